"""The labelling page: review recordings and saved detections, mark keyword spans and true/false
accepts; labels go to ``<audio>.label.json`` beside the audio. Run ``python -m train.label FOLDER``
(``make label``). Parts: ``labels`` (the file format), ``catalog`` (the folder), ``render``
(waveform, spectrogram, playback audio), ``server`` (HTTP + JSON API), ``static/`` (the page)."""
