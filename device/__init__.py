"""wakeword's device side: what runs on the Pi (the daemon, the Wyoming service, the Python API)."""


def package_version() -> str:
    """The installed package's version, else a plain word (a Pi runs a release's lib/, not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wakeword")
    except PackageNotFoundError:
        return "unknown (not installed as a package)"
