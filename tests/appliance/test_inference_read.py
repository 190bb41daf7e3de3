"""The inference process reads a stored series into datasets that do not keep the decrypted objects."""

from __future__ import annotations

import numpy as np

from appliance.context import open_appliance
from appliance.inference_worker import _datasets
from appliance.store import new_object_id
from models.phantom import make_phantom
from tests.models.test_bundle import encoded
from tests.support.synthetic import phantom_series

SPACING = (1.0, 1.0, 2.0)


def test_a_series_is_read_in_memory_once(home):
    phantom = make_phantom((48, 40, 6), SPACING, seed=3, lesion_count=1)
    app = open_appliance(home)
    try:
        objects = []
        for dataset in phantom_series(phantom.hu, SPACING):
            object_id = new_object_id()
            wrapped = app.store.put(object_id, encoded(dataset))
            objects.append([object_id, wrapped.kek_id, wrapped.blob])
        datasets = _datasets(app, objects)
    finally:
        app.close()
    # pydicom keeps the buffer it parsed (the whole decrypted object: the pixels a second time)
    # unless it is let go; the pixel data itself is still there to decode
    assert [dataset.buffer for dataset in datasets] == [None] * 6
    stack = np.stack([dataset.pixel_array for dataset in datasets])
    assert stack.shape == (6, 40, 48) and stack.any()
