"""One decoder for the text of settings that name user code: built-in names, references,
object labels and file forms, and the settings' validation that uses it."""

from __future__ import annotations

import pytest

from mosaic_fast.errors import MosaicValueError
from mosaic_fast.settings import SETTINGS
from mosaic_fast.user_code import Builtin, File, Import, Object, decode, user_object


@pytest.mark.parametrize(
    ("value", "decoded"),
    [
        ("sgd", Builtin("optimizer", "sgd")),
        ("mypkg.nets:make", Import("optimizer", "mypkg.nets:make")),
        ("<make_net>", Object("optimizer", "<make_net>")),
        ("edges:ring.txt", File("optimizer", "edges", "ring.txt")),
        ("assignment:a.npy", File("optimizer", "assignment", "a.npy")),
        # Too short to name a file, and never a module `edges`: a (refused) name.
        ("edges:", Builtin("optimizer", "edges:")),
        ("cuda:0", Builtin("optimizer", "cuda:0")),
    ],
)
def test_every_text_decodes_to_one_form(value, decoded):
    assert decode("optimizer", value) == decoded


def test_file_forms_give_their_text_back():
    code = decode("topology", "edges:graphs/ring.txt")
    assert isinstance(code, File)
    assert (code.form, code.path) == ("edges-file", "graphs/ring.txt")
    assert code.text == "edges:graphs/ring.txt"


def test_user_object_imports_references_and_refuses_labels():
    assert user_object("model", "gn-lenet") is None
    assert user_object("topology", "edges:ring.txt") is None
    assert user_object("model", "mosaic_fast.user_code:decode") is decode
    with pytest.raises(MosaicValueError, match="model '<net>' was a Python object handed to"):
        user_object("model", "<net>")
    with pytest.raises(MosaicValueError, match="model 'no_such_mod:x': no module named"):
        user_object("model", "no_such_mod:x")


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("topology", "edges:ring.txt", True),
        ("topology", "assignment:a.npy", False),
        ("fragmenter", "assignment:a.npy", True),
        ("fragmenter", "edges:ring.txt", False),
        ("fragmenter", "mod:attr", False),
        ("model", "mod:attr", True),
        ("model", "<net>", True),
        ("partition", "<parts>", True),
        ("partition", "mod:attr", False),
        ("device", "cuda:1", True),
        ("dataset", "edges:x", False),
    ],
)
def test_settings_accept_the_forms_their_declarations_list(name, value, accepted):
    assert (SETTINGS[name].problem(value) is None) == accepted
