"""node.images.store.Image writes its __init__ (no exec at import): the same as record's own."""
from __future__ import annotations

import inspect

from node.images.store import Image
from tests.test_oci_record import _generated_twin


def test_image_init_is_what_record_would_generate():
    twin = _generated_twin(Image)
    assert inspect.signature(Image.__init__) == inspect.signature(twin.__init__)
    required = [object() for _ in range(len(Image.__slots__) - len(Image.__init__.__defaults__))]
    made, generated = Image(*required), twin(*required)
    assert [getattr(made, n) for n in Image.__slots__] == [getattr(generated, n) for n in Image.__slots__]
    assert made == Image(*required) and repr(made).startswith("Image(id=")
