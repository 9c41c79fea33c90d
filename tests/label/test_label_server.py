"""The labelling server's JSON API (train/label/server.py) over real HTTP on loopback."""

from __future__ import annotations

import io
import json
from urllib.parse import quote

import numpy as np
import pytest
import soundfile as sf

from tests.label.label_helpers import RATE, http, label_of, make_folder, serving


@pytest.fixture
def folder(tmp_path):
    files = make_folder(tmp_path / "recordings")
    with serving(tmp_path / "recordings") as url:
        yield url, files, tmp_path / "recordings"


def rel(files, root, name):
    return quote(files[name].relative_to(root).as_posix())


def test_items_list_every_audio_file_with_state(folder):
    url, files, root = folder
    status, body, kind = http("GET", url + "/api/items")
    assert status == 200 and kind == "application/json"
    items = {i["path"]: i for i in json.loads(body)["items"]}
    assert set(items) == {f.relative_to(root).as_posix() for f in files.values()}
    field = items[files["field"].relative_to(root).as_posix()]
    assert (field["group"], field["sample_rate"], field["channels"]) == ("field", 48000, 2)
    assert field["duration_s"] == pytest.approx(3.0) and field["meta"]["detected_at_s"] == 1.9
    corrupt = items[files["corrupt"].relative_to(root).as_posix()]
    assert corrupt["error"].startswith("cannot read audio") and str(root) not in corrupt["error"]
    bad = items[files["badlabel"].relative_to(root).as_posix()]
    assert "kept as" in bad["label_problem"] and bad["label"]["kind"] == "unlabeled"
    assert items[files["take"].relative_to(root).as_posix()]["group"] == "positive"


def test_label_put_is_saved_atomically_and_read_back(folder):
    url, files, root = folder
    path = rel(files, root, "field")
    status, body, _ = http(
        "PUT", f"{url}/api/label?path={path}", {"kind": "true_accept", "keyword_spans": [[1.0, 1.6]]}
    )
    assert status == 200, body
    on_disk = json.loads(label_of(files["field"]).read_text())
    assert on_disk["kind"] == "true_accept" and on_disk["keyword_spans"] == [[1.0, 1.6]] and on_disk["updated"]
    status, body, _ = http("GET", f"{url}/api/item?path={path}")
    assert json.loads(body)["label"]["keyword_spans"] == [[1.0, 1.6]]
    assert not [p for p in files["field"].parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"kind": "keyword", "keyword_spans": [[0.5, 9.0]]}, 400, "ends after the audio"),
        ({"kind": "sometimes"}, 400, "kind"),
        ({"kind": "negative", "keyword_spans": [[0.1, 0.2]]}, 400, "cannot have keyword_spans"),
        (b"not json", 400, "not JSON"),
    ],
)
def test_bad_labels_are_refused_and_nothing_is_written(folder, body, status, message):
    url, files, root = folder
    got, answer, _ = http("PUT", f"{url}/api/label?path={rel(files, root, 'take')}", body)
    assert got == status and message in json.loads(answer)["error"]
    assert not label_of(files["take"]).exists()


def test_corrupt_audio_cannot_be_rendered_or_labelled_but_others_can(folder):
    url, files, root = folder
    path = rel(files, root, "corrupt")
    for route in ("peaks", "spectrogram.png", "audio.wav"):
        status, body, _ = http("GET", f"{url}/api/{route}?path={path}")
        assert status == 422 and "cannot read audio" in json.loads(body)["error"]
    status, _, _ = http("PUT", f"{url}/api/label?path={path}", {"kind": "negative", "keyword_spans": []})
    assert status == 422
    status, _, _ = http("GET", f"{url}/api/peaks?path={rel(files, root, 'take')}")
    assert status == 200


def test_rendering_gives_the_audio_as_the_model_hears_it(folder):
    url, files, root = folder
    path = rel(files, root, "field")  # 48 kHz stereo FLAC
    status, body, kind = http("GET", f"{url}/api/audio.wav?path={path}")
    assert status == 200 and kind == "audio/wav"
    audio, rate = sf.read(io.BytesIO(body), dtype="float32")
    assert rate == RATE and audio.ndim == 1 and len(audio) == pytest.approx(3.0 * RATE, abs=2)
    loud = np.flatnonzero(np.abs(audio) > 0.25)
    assert loud[0] / RATE == pytest.approx(1.0, abs=0.01) and loud[-1] / RATE == pytest.approx(1.6, abs=0.01)
    status, body, _ = http("GET", f"{url}/api/peaks?path={path}&columns=300")
    peaks = json.loads(body)
    assert len(peaks["max"]) == 300 and peaks["duration_s"] == pytest.approx(3.0)
    assert max(peaks["max"][100:160]) > 0.4 > max(peaks["max"][:95])  # the burst at 1.0-1.6 s
    status, body, kind = http("GET", f"{url}/api/spectrogram.png?path={path}")
    assert status == 200 and kind == "image/png" and body[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    "path",
    [
        "../../etc/passwd",
        "computer/positive/computer-20261124T100000-01.json",
        "nothing.wav",
        "%2Fetc%2Fpasswd",
        "take%00.wav",
    ],
)
def test_only_listed_audio_is_served(folder, path):
    url, _, _ = folder
    status, _, _ = http("GET", f"{url}/api/audio.wav?path={path}")
    assert status == 404


def test_foreign_host_and_form_posts_are_refused(folder):
    url, files, root = folder
    status, _, _ = http("GET", url + "/api/items", headers={"Host": "attacker.example:80"})
    assert status == 403
    status, _, _ = http(
        "PUT",
        f"{url}/api/label?path={rel(files, root, 'take')}",
        b"kind=keyword",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert status == 415 and not label_of(files["take"]).exists()


def test_a_negative_or_bogus_content_length_is_refused_without_reading(folder):
    import http.client
    from urllib.parse import urlsplit

    url, files, root = folder
    host = urlsplit(url)
    for length in ("-1", "lots"):
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=30)
        conn.putrequest("PUT", f"/api/label?path={rel(files, root, 'take')}")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("Content-Length", length)
        conn.endheaders()  # and no body: a server reading "to the end" would hang here
        answer = conn.getresponse()
        assert answer.status == 400, length
        conn.close()
    assert not label_of(files["take"]).exists()


def test_a_label_file_that_is_a_symlink_is_never_read(folder, tmp_path):
    url, files, root = folder
    secret = tmp_path / "secret.json"
    secret.write_text('{"kind": "keyword", "keyword_spans": [[0.1, 0.2]], "secret": "outside"}')
    label_of(files["take"]).symlink_to(secret)
    status, body, _ = http("GET", f"{url}/api/item?path={rel(files, root, 'take')}")
    assert status == 200 and b"outside" not in body and b"symbolic link" in body
    assert not list(label_of(files["take"]).parent.glob("*.bad*"))  # nothing copied in


def test_the_page_and_its_assets_are_served(folder):
    url, _, _ = folder
    status, body, kind = http("GET", url + "/")
    assert status == 200 and kind.startswith("text/html") and b"label.js" in body
    for asset in ("label.js", "label.css"):
        assert http("GET", f"{url}/static/{asset}")[0] == 200
    assert http("GET", f"{url}/static/../server.py")[0] == 404


# -- fuzzing the routes (issue 18): any request gets an answer, never a dropped connection ----------
def test_any_request_is_answered_and_nothing_outside_the_folder_changes(tmp_path):
    import os
    import urllib.error

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    root = tmp_path / "recordings"
    make_folder(root)
    (root / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    outside = tmp_path / "outside.wav"
    outside.write_bytes(b"not yours")
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if root not in p.parents and p != root}
    names = [p.relative_to(root).as_posix() for p in root.rglob("*.wav")]
    paths = st.one_of(
        st.sampled_from(names),
        st.text(max_size=40),
        st.sampled_from(
            [
                "../outside.wav",
                "/etc/passwd",
                "%00",
                "a/../../outside.wav",
                "",
                ".",
                "broken.wav",
                "x.wav.label.json",
                "\x00",
                "..",
                "//",
                "%2e%2e/outside.wav",
            ]
        ),
    )
    routes = st.sampled_from(
        [
            "/api/items",
            "/api/item",
            "/api/peaks",
            "/api/spectrogram.png",
            "/api/audio.wav",
            "/api/label",
            "/",
            "/static/../server.py",
            "/api/nope",
            "/static/index.html",
        ]
    )
    bodies = st.one_of(
        st.none(),
        st.binary(max_size=200),
        st.fixed_dictionaries(
            {
                "kind": st.one_of(st.text(max_size=12), st.sampled_from(["keyword", "negative"])),
                "keyword_spans": st.lists(st.lists(st.floats(), max_size=3), max_size=3),
            }
        ),
    )

    with serving(root) as url:

        @settings(
            max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(st.sampled_from(["GET", "PUT"]), routes, paths, st.text(max_size=6), bodies)
        def one(method, route, path, columns, body):
            query = f"?path={quote(path, safe='')}&columns={quote(columns, safe='')}"
            try:
                status, answer, _ = http(method, url + route + query, body if method == "PUT" else None)
            except (urllib.error.URLError, ConnectionError) as exc:  # a handler that crashed drops the line
                raise AssertionError(f"{method} {route}{query}: no answer ({exc})") from None
            assert status in (200, 204, 400, 403, 404, 405, 413, 415, 422, 501), (method, route, path, status)
            if status >= 400 and answer:
                assert "Traceback" not in answer.decode("utf-8", "replace")

        one()
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if root not in p.parents and p != root}
    assert after == before  # nothing written or touched outside the folder
