//! The peer plane's frames as another runtime sends them: a gRPC stream of
//! `InvokeFrame` messages (each length-delimited), a head then a body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mecha_proto::internal::v1::InvokeFrame;
use prost::Message;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    let mut frames = Vec::new();
    while !rest.is_empty() && frames.len() < 64 {
        match InvokeFrame::decode_length_delimited(&mut rest) {
            Ok(frame) => frames.push(frame),
            Err(_) => return,
        }
    }
    let _ = mecha_peers::fuzzing::read(frames);
});
