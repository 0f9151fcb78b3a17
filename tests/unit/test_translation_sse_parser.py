"""The SSE reader under every line ending, field form and chunking a provider's stream can take
(the WHATWG event-stream rules): each raw stream, fed whole, byte by byte and in 2- and 3-byte
pieces, gives exactly the listed (event, data) pairs. Fixed expected values."""

import pytest

from filter.translation.sse import SSEParser, encode_data, encode_event

CASES = [
    pytest.param(b"event: a\ndata: 1\n\ndata: 2\n\n", [("a", b"1"), ("", b"2")], id="lf"),
    pytest.param(b"event: a\r\ndata: 1\r\n\r\ndata: 2\r\n\r\n", [("a", b"1"), ("", b"2")], id="crlf"),
    pytest.param(b"event: a\rdata: 1\r\rdata: 2\r\r", [("a", b"1"), ("", b"2")], id="cr"),
    pytest.param(b": keep-alive\n\n:x\ndata: 3\n\n", [("", b"3")], id="comments"),
    pytest.param(b"data: a\ndata: b\ndata:c\n\n", [("", b"a\nb\nc")], id="multi-line data"),
    pytest.param(b"event:e\ndata:{}\n\n", [("e", b"{}")], id="no space after the colon"),
    pytest.param(b"data:  x\n\n", [("", b" x")], id="only one space is dropped"),
    pytest.param(b"event: lonely\n\n", [], id="an event without data is no event"),
    pytest.param(b"\n\n\ndata: late\n\n", [("", b"late")], id="leading blank lines"),
    pytest.param(b"id: 7\nretry: 10\ndata: d\n\n", [("", b"d")], id="other fields"),
    pytest.param(b"data\ndata: x\n\n", [("", b"\nx")], id="a field without a colon has an empty value"),
    pytest.param(b"data:\n\n", [("", b"")], id="empty data"),
    pytest.param(b"data: 1\n\ndata: unterminated", [("", b"1"), ("", b"unterminated")], id="an unterminated tail"),
    pytest.param(b"data: 1\n\nevent: t\ndata: 2\n", [("", b"1"), ("t", b"2")], id="a tail ending in one newline"),
    pytest.param(b"data: 1\n\n\n", [("", b"1")], id="a blank tail"),
    pytest.param(b"event: \xff\ndata: x\n\n", [("\ufffd", b"x")], id="a broken event name"),
    pytest.param(b"", [], id="nothing"),
    pytest.param(b"x\ndata: y\n\n", [("", b"y")], id="a one-letter field"),
    pytest.param(b"\n\n\n data: x\n\nXdata: y\n\n", [], id="fields named ' data' and 'Xdata' are not data"),
    pytest.param(b"data: 1\n\nevent: only", [("", b"1")], id="a tail without data"),
    pytest.param(b"\n\n\nXdata: y\n\n", [], id="a field named 'Xdata' after blank lines is not data"),
    pytest.param(b"data: x \n", [("", b"x ")], id="a tail keeps its trailing space"),
    pytest.param(b"data: oX", [("", b"oX")], id="a tail keeps its last letter"),
]


@pytest.mark.parametrize("raw, events", CASES)
@pytest.mark.parametrize("step", [None, 1, 2, 3])
def test_each_stream_reads_the_same_however_it_is_cut(raw, events, step):
    parser = SSEParser()
    step = step or max(len(raw), 1)
    got = []
    for i in range(0, len(raw), step):
        got += parser.feed(raw[i:i + step])
    got += parser.close()
    assert [(e.event, e.data) for e in got] == events


def test_events_come_out_as_soon_as_they_end():
    parser = SSEParser()
    assert parser.feed(b"data: 1\n") == []
    assert [(e.event, e.data) for e in parser.feed(b"\ndata: 2")] == [("", b"1")]
    assert parser.feed(b"") == []
    assert [(e.event, e.data) for e in parser.feed(b"\r\n\r\n")] == [("", b"2")]
    assert parser.close() == []


def test_an_event_after_leading_blank_lines_comes_out_at_once():
    assert [(e.event, e.data) for e in SSEParser().feed(b"\n\ndata: x\n\n")] == [("", b"x")]


def test_only_the_newline_right_after_a_carriage_return_is_dropped():
    parser = SSEParser()
    assert parser.feed(b"data: 1\r") == []
    assert parser.feed(b"\ndata: 2") == []
    # This "\n" ends the event: it follows "2", not a "\r".
    assert [(e.event, e.data) for e in parser.feed(b"\n\n")] == [("", b"1\n2")]


def test_a_crlf_split_between_chunks_is_one_line_end():
    parser = SSEParser()
    assert parser.feed(b"data: 1\r") == []
    # "\r\n" then "\r": a line end and a blank line (a lone CR ends a line too): the event is out.
    assert [(e.event, e.data) for e in parser.feed(b"\n\r")] == [("", b"1")]
    # The "\n" after that "\r" belongs to it: no second blank line, no empty event.
    assert [(e.event, e.data) for e in parser.feed(b"\ndata: 2\n\n")] == [("", b"2")]


def test_written_events():
    assert encode_event("message_stop", b'{"type":"message_stop"}') == \
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    assert encode_data(b"[DONE]") == b"data: [DONE]\n\n"
