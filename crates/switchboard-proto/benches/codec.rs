//! Micro-benchmarks of the protocol engine's hot paths, in bytes per second:
//! unmasking, decoding client frames, UTF-8 validation, encoding server
//! frames. Run: `cargo bench -p switchboard-proto`.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use switchboard_proto::frame::{encode_frame, encode_masked_frame, DataOp, OpCode};
use switchboard_proto::mask::{apply_mask, apply_mask_bytewise};
use switchboard_proto::utf8::Utf8Validator;
use switchboard_proto::{Config, Connection};

fn unmask(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask");
    for size in [20usize, 1024, 16 * 1024, 1 << 20] {
        let mut data = vec![0x5au8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("word/{size}"), |b| b.iter(|| apply_mask(black_box(&mut data), [1, 2, 3, 4], 0)));
        group.bench_function(format!("bytewise/{size}"), |b| b.iter(|| apply_mask_bytewise(black_box(&mut data), [1, 2, 3, 4], 0)));
    }
    group.finish();
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for (size, count) in [(20usize, 1000usize), (16 * 1024, 64)] {
        let mut wire = BytesMut::new();
        for _ in 0..count {
            encode_masked_frame(OpCode::Data(DataOp::Text), true, false, &vec![b'a'; size], [9, 8, 7, 6], &mut wire);
        }
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_function(format!("text/{size}x{count}"), |b| {
            b.iter(|| {
                let mut conn = Connection::server(Config::default(), None);
                let mut buf = wire.clone();
                let mut n = 0;
                while let Some(event) = conn.handle_read(&mut buf).unwrap() {
                    black_box(event);
                    n += 1;
                }
                assert_eq!(n, count);
            })
        });
    }
    group.finish();
}

fn utf8(c: &mut Criterion) {
    let mut group = c.benchmark_group("utf8");
    for (name, text) in [("ascii", "plain ascii text ".repeat(4096)), ("mixed", "κόσμε €𝄞 ascii ".repeat(2048))] {
        group.throughput(Throughput::Bytes(text.len() as u64));
        group.bench_function(name, |b| {
            b.iter(|| {
                let mut v = Utf8Validator::new();
                for piece in text.as_bytes().chunks(4096) {
                    v.feed(black_box(piece)).unwrap();
                }
                v.finish().unwrap();
            })
        });
    }
    group.finish();
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for size in [20usize, 16 * 1024] {
        let payload = vec![b'x'; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(format!("server-frame/{size}"), |b| b.iter(|| encode_frame(OpCode::Data(DataOp::Text), false, black_box(&payload))));
    }
    group.finish();
}

criterion_group!(benches, unmask, decode, utf8, encode);
criterion_main!(benches);
