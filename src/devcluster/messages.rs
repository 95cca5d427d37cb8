//! Client WebSocket frames (fragments included) → exec inputs: stdin bytes, resize, stdin EOF.
//!
//! Stdin is a byte stream, so a fragmented stdin message is passed on fragment by fragment
//! without reassembly; only the small resize and close messages are collected (bounded).

use bytes::BytesMut;
use fastwebsockets::OpCode;

use crate::protocol::{self, ClientFrame, FrameError, MAX_RESIZE_BYTES, ResizeError, TerminalSize};

/// What a client message asks of the container.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// Stdin bytes at `[1..]`; byte 0 is a free slot (holding the channel byte) so the buffer
    /// can be sent back as a frame without copying.
    Stdin(BytesMut),
    Resize(TerminalSize),
    /// v5 `[255, 0]`: the client will send no more stdin.
    StdinEof,
    /// Nothing to do: an empty ("ready") frame, a close of another stream, a pong.
    Nothing,
    /// The client sent a Close frame.
    Closed,
}

/// Why a client message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error("continuation frame without a message to continue")]
    StrayContinuation,
    #[error("new message before the previous one ended")]
    Interleaved,
}

/// Turns the client's frames into [`Input`]s, remembering a fragmented message's channel.
#[derive(Debug)]
pub struct Assembler {
    v5: bool,
    partial: Partial,
}

#[derive(Debug)]
enum Partial {
    None,
    /// A fragmented stdin message: its continuations are stdin too.
    Stdin,
    /// A fragmented control message (resize, close), collected up to a bound.
    Small(Vec<u8>),
}

impl Assembler {
    pub fn new(v5: bool) -> Assembler {
        Assembler {
            v5,
            partial: Partial::None,
        }
    }

    /// Handles one frame.
    pub fn push(
        &mut self,
        opcode: OpCode,
        fin: bool,
        payload: BytesMut,
    ) -> Result<Input, MessageError> {
        match opcode {
            OpCode::Close => Ok(Input::Closed),
            OpCode::Ping | OpCode::Pong => Ok(Input::Nothing),
            // Python's client sends text frames (`chr(channel) + data`); treat them alike.
            OpCode::Binary | OpCode::Text => {
                if !matches!(self.partial, Partial::None) {
                    return Err(MessageError::Interleaved);
                }
                if fin {
                    return self.message(payload);
                }
                match payload.first() {
                    None => Err(FrameError::Empty.into()),
                    Some(&protocol::STDIN) => {
                        self.partial = Partial::Stdin;
                        Ok(stdin_input(payload))
                    }
                    Some(_) => {
                        check_small(payload.len())?;
                        self.partial = Partial::Small(payload.to_vec());
                        Ok(Input::Nothing)
                    }
                }
            }
            OpCode::Continuation => match std::mem::replace(&mut self.partial, Partial::None) {
                Partial::None => Err(MessageError::StrayContinuation),
                Partial::Stdin => {
                    if !fin {
                        self.partial = Partial::Stdin;
                    }
                    let mut buf = BytesMut::with_capacity(payload.len() + 1);
                    buf.extend_from_slice(&[protocol::STDIN]);
                    buf.extend_from_slice(&payload);
                    Ok(stdin_input(buf))
                }
                Partial::Small(mut collected) => {
                    check_small(collected.len() + payload.len())?;
                    collected.extend_from_slice(&payload);
                    if fin {
                        self.message(BytesMut::from(&collected[..]))
                    } else {
                        self.partial = Partial::Small(collected);
                        Ok(Input::Nothing)
                    }
                }
            },
        }
    }

    fn message(&self, payload: BytesMut) -> Result<Input, MessageError> {
        let frame = match protocol::check_client_frame(&payload, self.v5) {
            Err(FrameError::BadResize(ResizeError::TooLarge(n))) => {
                return Err(FrameError::BadResize(ResizeError::TooLarge(n)).into());
            }
            // As the kubelet does, a resize it cannot use (0x0 from a terminal of unknown
            // size, bad JSON) is skipped, not fatal.
            Err(FrameError::BadResize(e)) => {
                tracing::debug!(error = %e, "resize ignored");
                return Ok(Input::Nothing);
            }
            other => other?,
        };
        Ok(match frame {
            ClientFrame::Stdin(_) => stdin_input(payload),
            ClientFrame::Resize(size) => Input::Resize(size),
            ClientFrame::CloseStream(protocol::STDIN) => Input::StdinEof,
            ClientFrame::CloseStream(_) => Input::Nothing,
        })
    }
}

fn stdin_input(payload: BytesMut) -> Input {
    if payload.len() <= 1 {
        Input::Nothing
    } else {
        Input::Stdin(payload)
    }
}

fn check_small(len: usize) -> Result<(), MessageError> {
    if len > MAX_RESIZE_BYTES + 1 {
        return Err(FrameError::BadResize(ResizeError::TooLarge(len - 1)).into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(bytes: &[u8]) -> BytesMut {
        BytesMut::from(bytes)
    }

    #[test]
    fn whole_messages() {
        let mut a = Assembler::new(true);
        assert_eq!(
            a.push(OpCode::Binary, true, b(b"\0hi")),
            Ok(Input::Stdin(b(b"\0hi")))
        );
        assert_eq!(a.push(OpCode::Binary, true, b(b"\0")), Ok(Input::Nothing));
        assert_eq!(
            a.push(OpCode::Text, true, b(b"\0hi")),
            Ok(Input::Stdin(b(b"\0hi")))
        );
        assert_eq!(
            a.push(OpCode::Binary, true, b(b"\x04{\"Width\":80,\"Height\":24}")),
            Ok(Input::Resize(TerminalSize {
                width: 80,
                height: 24
            }))
        );
        assert_eq!(
            a.push(OpCode::Binary, true, b(&[255, 0])),
            Ok(Input::StdinEof)
        );
        assert_eq!(
            a.push(OpCode::Binary, true, b(&[255, 1])),
            Ok(Input::Nothing)
        );
        assert_eq!(a.push(OpCode::Close, true, b(&[3, 232])), Ok(Input::Closed));
        assert_eq!(a.push(OpCode::Pong, true, b(b"")), Ok(Input::Nothing));
    }

    #[test]
    fn refused_messages() {
        let mut a = Assembler::new(false);
        assert_eq!(
            a.push(OpCode::Binary, true, b(&[255, 0])),
            Err(MessageError::Frame(FrameError::CloseNeedsV5))
        );
        assert_eq!(
            a.push(OpCode::Binary, true, b(b"")),
            Err(MessageError::Frame(FrameError::Empty))
        );
        assert_eq!(
            a.push(OpCode::Binary, true, b(b"\x01out")),
            Err(MessageError::Frame(FrameError::ForbiddenChannel(1)))
        );
        assert_eq!(
            a.push(OpCode::Binary, true, b(b"\x07x")),
            Err(MessageError::Frame(FrameError::UnknownChannel(7)))
        );
        assert_eq!(
            a.push(OpCode::Binary, true, b(b"\x04{bad")),
            Ok(Input::Nothing)
        );
        assert_eq!(
            a.push(OpCode::Binary, true, b(b"\x04{\"Width\":0,\"Height\":0}")),
            Ok(Input::Nothing)
        );
        let mut huge = b"\x04".to_vec();
        huge.extend_from_slice(&[b' '; 300]);
        assert!(matches!(
            a.push(OpCode::Binary, true, b(&huge)),
            Err(MessageError::Frame(FrameError::BadResize(
                ResizeError::TooLarge(300)
            )))
        ));
        assert_eq!(
            a.push(OpCode::Continuation, true, b(b"x")),
            Err(MessageError::StrayContinuation)
        );
        assert_eq!(
            a.push(OpCode::Binary, false, b(b"")),
            Err(MessageError::Frame(FrameError::Empty))
        );
    }

    #[test]
    fn fragmented_stdin_streams_through() {
        let mut a = Assembler::new(true);
        assert_eq!(
            a.push(OpCode::Binary, false, b(b"\0ab")),
            Ok(Input::Stdin(b(b"\0ab")))
        );
        assert_eq!(
            a.push(OpCode::Binary, true, b(b"\0x")),
            Err(MessageError::Interleaved)
        );
        let mut a = Assembler::new(true);
        a.push(OpCode::Binary, false, b(b"\0ab")).unwrap();
        assert_eq!(
            a.push(OpCode::Continuation, false, b(b"cd")),
            Ok(Input::Stdin(b(b"\0cd")))
        );
        assert_eq!(
            a.push(OpCode::Continuation, true, b(b"e")),
            Ok(Input::Stdin(b(b"\0e")))
        );
        assert_eq!(
            a.push(OpCode::Continuation, true, b(b"e")),
            Err(MessageError::StrayContinuation)
        );
    }

    #[test]
    fn fragmented_resize_is_collected_and_bounded() {
        let mut a = Assembler::new(true);
        assert_eq!(
            a.push(OpCode::Binary, false, b(b"\x04{\"Width\":")),
            Ok(Input::Nothing)
        );
        assert_eq!(
            a.push(OpCode::Continuation, false, b(b"100,")),
            Ok(Input::Nothing)
        );
        assert_eq!(
            a.push(OpCode::Continuation, true, b(b"\"Height\":30}")),
            Ok(Input::Resize(TerminalSize {
                width: 100,
                height: 30
            }))
        );
        let mut a = Assembler::new(true);
        a.push(OpCode::Binary, false, b(b"\x04{")).unwrap();
        assert!(matches!(
            a.push(OpCode::Continuation, false, b(&[b' '; 400])),
            Err(MessageError::Frame(FrameError::BadResize(_)))
        ));
    }
}
