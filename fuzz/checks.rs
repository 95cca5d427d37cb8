//! The properties the fuzz targets check, as plain functions: `fuzz_targets/*` call them under
//! libFuzzer, and `tests/protocol_fuzz.rs` calls them on random inputs in the normal suite.
// Each fuzz target uses one of these.
#![allow(dead_code)]

use bytes::BytesMut;
use fastwebsockets::OpCode;
use podterm::devcluster::messages::{Assembler, Input};
use podterm::protocol::{
    self, ClientFrame, FrameError, MAX_RESIZE_BYTES, MAX_TERMINAL_CELLS, check_client_frame,
    parse_resize, resize_frame,
};

/// `check_client_frame` never panics, and what it accepts is what the frame says.
pub fn client_frame(data: &[u8]) {
    for v5 in [false, true] {
        match check_client_frame(data, v5) {
            Ok(ClientFrame::Stdin(payload)) => {
                assert_eq!(data[0], protocol::STDIN);
                assert_eq!(payload, &data[1..]);
            }
            Ok(ClientFrame::Resize(size)) => {
                assert_eq!(data[0], protocol::RESIZE);
                check_size(size);
            }
            Ok(ClientFrame::CloseStream(stream)) => {
                assert!(v5, "close needs v5");
                assert_eq!(data, [protocol::CLOSE, stream]);
            }
            Err(FrameError::Empty) => assert!(data.is_empty()),
            Err(FrameError::UnknownChannel(c)) => {
                assert_eq!(data[0], c);
                assert!(protocol::Channel::from_byte(c).is_none());
            }
            Err(FrameError::ForbiddenChannel(c)) => {
                assert!([protocol::STDOUT, protocol::STDERR, protocol::ERROR].contains(&c));
            }
            Err(FrameError::CloseNeedsV5) => assert!(!v5),
            Err(FrameError::BadClose) => assert_eq!(data[0], protocol::CLOSE),
            Err(FrameError::BadResize(_)) => assert_eq!(data[0], protocol::RESIZE),
        }
    }
}

/// `parse_resize` never panics; an accepted size is in range and round-trips through
/// `resize_frame`.
pub fn resize(data: &[u8]) {
    if let Ok(size) = parse_resize(data) {
        assert!(data.len() <= MAX_RESIZE_BYTES);
        check_size(size);
        let frame = resize_frame(size);
        assert_eq!(parse_resize(&frame[1..]), Ok(size));
    }
}

fn check_size(size: protocol::TerminalSize) {
    assert!((1..=MAX_TERMINAL_CELLS).contains(&size.width));
    assert!((1..=MAX_TERMINAL_CELLS).contains(&size.height));
}

/// Feeds `data`, read as a sequence of WebSocket frames (opcode, fin, length, payload), to the
/// dev cluster's message assembler: it never panics, a stdin input carries exactly the frame's
/// data behind a stdin channel byte, and a stdin message with data is never dropped.
pub fn frame_sequence(data: &[u8]) {
    let v5 = data.first().is_some_and(|b| b & 1 == 1);
    let mut assembler = Assembler::new(v5);
    let mut rest = data;
    while let [head, len, tail @ ..] = rest {
        let opcode = match head & 0x7 {
            0 => OpCode::Continuation,
            1 => OpCode::Text,
            3 => OpCode::Close,
            4 => OpCode::Ping,
            5 => OpCode::Pong,
            _ => OpCode::Binary,
        };
        let fin = head & 0x80 != 0;
        let len = usize::from(*len).min(tail.len());
        let (payload, next) = tail.split_at(len);
        rest = next;
        let fresh_stdin = matches!(opcode, OpCode::Binary | OpCode::Text)
            && payload.first() == Some(&protocol::STDIN);
        match assembler.push(opcode, fin, BytesMut::from(payload)) {
            Ok(Input::Stdin(bytes)) => {
                assert!(bytes.len() >= 2, "empty stdin is Nothing");
                assert_eq!(bytes[0], protocol::STDIN);
                let expected = if fresh_stdin { &payload[1..] } else { payload };
                assert!(fresh_stdin || opcode == OpCode::Continuation);
                assert_eq!(&bytes[1..], expected);
            }
            Ok(Input::Resize(size)) => check_size(size),
            Ok(Input::StdinEof) => assert!(v5),
            Ok(Input::Closed) => assert_eq!(opcode, OpCode::Close),
            Ok(Input::Nothing) => {
                assert!(!(fresh_stdin && payload.len() > 1), "stdin data dropped");
            }
            // A refused message ends the session: nothing after it counts.
            Err(_) => return,
        }
    }
}

/// The tar reader never panics; whatever it accepts is clean (relative, no `..`, under the
/// top, links inside), and cutting the stream into other pieces changes nothing.
pub fn tar_reader(data: &[u8]) {
    use podterm::protocol::tar::{Event, Kind, TarReader};
    let run = |chunk: usize| {
        let mut reader = TarReader::new("top", 1 << 20);
        let mut seen = Vec::new();
        let result = data.chunks(chunk.max(1)).try_for_each(|piece| {
            reader.push(piece, &mut |e| {
                if let Event::Entry(e) = e {
                    assert!(e.name == "top" || e.name.starts_with("top/"), "{e:?}");
                    assert!(
                        !e.name.split('/').any(|s| s == ".." || s.is_empty()),
                        "{e:?}"
                    );
                    if e.kind == Kind::Symlink {
                        assert!(!e.link.as_deref().unwrap_or("/").starts_with('/'));
                    }
                    seen.push(e.clone());
                }
                Ok(())
            })
        });
        (result.and_then(|()| reader.finish()).is_ok(), seen)
    };
    let whole = run(data.len());
    let split = run(1 + data.len() % 97);
    assert_eq!(whole, split);
}
