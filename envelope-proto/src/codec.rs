//! A tonic codec that carries message bytes as they are.
//!
//! [`RawCodec`] has `Encode = Decode = Bytes`: the decoder hands out the
//! gRPC message frame as a [`Bytes`] taken from tonic's receive buffer
//! without copying, and the encoder writes given bytes into the frame. A
//! router built on the [`crate::raw`] services therefore forwards what it
//! received without decoding or re-encoding protobuf.

use bytes::{Buf, BufMut, Bytes};
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// Pass-through codec: messages are already-encoded protobuf bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

/// Writes message bytes into the outgoing gRPC frame.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawEncoder;

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put(item);
        Ok(())
    }
}

/// Takes the whole incoming gRPC message as [`Bytes`] (zero-copy split of
/// tonic's buffer).
#[derive(Debug, Clone, Copy, Default)]
pub struct RawDecoder;

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        let len = src.remaining();
        Ok(Some(src.copy_to_bytes(len)))
    }
}
