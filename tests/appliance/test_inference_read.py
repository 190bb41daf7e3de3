"""The inference process reads a stored series' headers, then each whole object once for the volume,
without keeping the decrypted objects or the series' pixel data beside the volume."""

from __future__ import annotations

import numpy as np

from appliance.context import open_appliance
from appliance.pipeline.inference.messages import StoredObject
from appliance.pipeline.inference.process import StoredSeries
from appliance.storage.store import new_object_id
from models.volume import build_volume
from testbed.phantom import make_phantom
from testbed.synthetic import phantom_series
from tests.support.datasets import encoded, read_back

SPACING = (1.0, 1.0, 2.0)


def test_headers_first_then_each_whole_object_once_for_the_volume(home):
    phantom = make_phantom((48, 40, 6), SPACING, seed=3, lesion_count=1)
    datasets = phantom_series(phantom.hu, SPACING)
    app = open_appliance(home)
    try:
        objects = []
        for dataset in datasets:
            object_id = new_object_id()
            wrapped = app.store.put(object_id, encoded(dataset))
            objects.append(StoredObject(object_id, wrapped.kek_id, wrapped.blob))
        series = StoredSeries(app, tuple(objects))
        # pydicom keeps the buffer it parsed (the whole decrypted object) unless it is let go
        assert [header.buffer for header in series.headers] == [None] * 6
        assert not any("PixelData" in header for header in series.headers)
        loaded = []

        def whole(header):  # type: ignore[no-untyped-def]
            dataset = series.whole(header)
            loaded.append(dataset)
            return dataset

        volume = build_volume(reversed(series.headers), load_pixels=whole)
    finally:
        app.close()
    assert len(loaded) == 6 and all(dataset.buffer is None and "PixelData" in dataset for dataset in loaded)
    assert np.array_equal(volume.array, build_volume(read_back(datasets)).array)
    assert not any("PixelData" in frame.dataset for frame in volume.frames)  # the SEG's sources: headers
