#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_proto::fuzzing::handshake_request(data));
