from signing.hashing import Sm3, sm3_hex


def test_sm3_known_answer():
    # GB/T 32905 example 1
    assert sm3_hex(b"abc") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    h = Sm3()
    h.update(b"a")
    h.update(b"bc")
    assert h.hexdigest() == sm3_hex(b"abc")

