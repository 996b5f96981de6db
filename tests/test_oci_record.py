"""oci.record: the value classes oci/ uses instead of dataclasses behave like them."""
from __future__ import annotations

import copy
import pickle
import subprocess
import sys

import pytest

from oci.digest import Digest
from oci.manifest import Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform
from oci.record import MISSING, Factory, FrozenRecordError, record
from oci.reference import Reference

HEX = "a" * 64


def test_frozen_record_equality_hash_and_immutability():
    d1, d2 = Digest("sha256", HEX), Digest(algorithm="sha256", hex=HEX)
    assert d1 == d2 and hash(d1) == hash(d2) and len({d1, d2}) == 1
    assert d1 != Digest("sha256", "b" * 64)
    assert d1 != ("sha256", HEX)  # another type is never equal
    with pytest.raises(FrozenRecordError):
        d1.hex = "b" * 64
    with pytest.raises(AttributeError):
        d1.extra = 1  # slots: no stray attributes
    assert repr(d1) == f"Digest(algorithm='sha256', hex='{HEX}')"


def test_order_and_defaults():
    assert sorted([Digest("sha512", "1" * 128), Digest("sha256", "f" * 64)])[0].algorithm == "sha256"
    with pytest.raises(TypeError):
        _ = Platform("linux", "amd64") < Platform("linux", "arm64")  # not ordered unless asked
    assert Reference("docker.io", "library/x").tag is None
    assert Platform("linux", "arm64", "v8") == Platform.parse("linux/arm64/v8")


def test_factory_default_is_per_instance_and_mutable_records_are_unhashable():
    a, b = ImageConfig(raw=b"{}"), ImageConfig(raw=b"{}")
    a.config["Cmd"] = ["sh"]
    assert b.config == {} and a.diff_ids == [] and a.diff_ids is not b.diff_ids
    with pytest.raises(TypeError):
        hash(a)


def test_copy_and_pickle_round_trip():
    ref = Reference.parse("127.0.0.1:5000/web:1")
    assert copy.copy(ref) == ref and copy.deepcopy(ref) == ref
    assert pickle.loads(pickle.dumps(ref)) == ref
    cfg = ImageConfig.parse(b'{"rootfs": {"diff_ids": ["sha256:' + HEX.encode() + b'"]}}')
    assert pickle.loads(pickle.dumps(cfg)) == cfg


def test_required_fields_are_required():
    @record
    class Pair:
        left: int
        right: int = Factory(list)

    assert Pair(1).right == [] and Pair(1, 2).right == 2
    with pytest.raises(TypeError):
        Pair()


def test_oci_does_not_import_dataclasses():
    code = "import sys, oci.manifest, oci.reference; print('dataclasses' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def _generated_twin(cls):
    """The class as record would build it without the hand-written __init__."""
    fields = tuple(cls.__slots__)
    body = {"__annotations__": dict.fromkeys(fields, "object"), "__qualname__": cls.__qualname__}
    for name in fields:
        default = cls.__init__.__defaults__ or ()
        offset = len(fields) - len(default)
        i = fields.index(name)
        if i >= offset:
            given = default[i - offset]
            body[name] = Factory(type(getattr(cls(*[None] * offset), name))) if given is MISSING else given
    frozen = cls.__setattr__ is not object.__setattr__
    return record(type(cls.__name__, (), body), frozen=frozen)


@pytest.mark.parametrize("cls", [Digest, Reference, Platform, Descriptor, ImageManifest, ImageIndex,
                                 ImageConfig])
def test_hand_written_inits_are_what_record_would_generate(cls):
    import inspect
    twin = _generated_twin(cls)
    assert inspect.signature(cls.__init__) == inspect.signature(twin.__init__)
    required = [None] * (len(cls.__slots__) - len(cls.__init__.__defaults__ or ()))
    made, generated = cls(*required), twin(*required)
    assert [getattr(made, n) for n in cls.__slots__] == [getattr(generated, n) for n in cls.__slots__]
    if cls is ImageConfig:
        assert made.config is not cls(*required).config  # a fresh one per instance
    else:
        with pytest.raises(FrozenRecordError):
            setattr(made, cls.__slots__[0], 1)


def test_a_hand_written_init_that_drifts_from_the_fields_is_refused():
    with pytest.raises(TypeError):
        @record
        class Missing:
            a: int
            b: int = 0

            def __init__(self, a):
                self.a = a
    with pytest.raises(TypeError):
        @record
        class WrongDefault:
            a: int = 1

            def __init__(self, a=2):
                self.a = a
    with pytest.raises(TypeError):
        @record
        class FactoryWithoutMissing:
            a: list = Factory(list)

            def __init__(self, a=None):
                self.a = a

    @record
    class Fine:
        a: int
        b: list = Factory(list)

        def __init__(self, a, b=MISSING):
            self.a = a
            self.b = [] if b is MISSING else b

    assert Fine(1) == Fine(1, []) and Fine(1).b is not Fine(1).b


def test_oci_classes_are_built_without_exec():
    code = ("import oci.record as r; real = r._generate_init; made = []\n"
            "r._generate_init = lambda cls, *a: (made.append(cls.__name__), real(cls, *a))[1]\n"
            "import oci.manifest, oci.reference; print(made)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
