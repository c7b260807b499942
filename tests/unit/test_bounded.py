from devlooper.bounded import BoundedBuffer, clip


def test_buffer_keeps_head_and_tail_and_counts_the_rest():
    buf = BoundedBuffer(10)
    for i in range(100):
        buf.write(f"{i % 10}".encode())
    assert bytes(buf.head) == b"01234"
    assert bytes(buf.tail) == b"56789"
    assert buf.dropped == 90
    assert "[... 90 bytes dropped ...]" in buf.text()


def test_buffer_under_its_limit_is_verbatim():
    buf = BoundedBuffer(100)
    buf.write(b"hello ")
    buf.write(b"world")
    assert buf.text() == "hello world" and buf.dropped == 0


def test_buffer_decodes_invalid_utf8_with_replacement():
    buf = BoundedBuffer(100)
    buf.write(b"ok \xff\xfe end")
    assert buf.text() == "ok \ufffd\ufffd end"


def test_clip():
    text, dropped = clip("a" * 50 + "b" * 50, 20)
    assert dropped == 80
    assert text.startswith("a" * 10) and text.endswith("b" * 10)
    assert clip("short", 20) == ("short", 0)
