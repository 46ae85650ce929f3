//! Fan-out of one message to 1 … 10,000 connections, as a room's broadcast
//! does it: the frame is encoded once into one buffer, and each
//! recipient's outbound queue (empty here, as at the start of a batch)
//! takes a reference to it. This is the per-recipient cost a broadcast pays
//! before any socket write; a room's run of held broadcasts is queued the
//! same way, once per batch.
//! Run: `cargo bench -p switchboard-net`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use switchboard_net::Outbound;
use switchboard_proto::frame::{encode_frame, DataOp, OpCode, SharedFrame};

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    for recipients in [1usize, 10, 100, 1000, 10_000] {
        group.throughput(Throughput::Elements(recipients as u64));
        group.bench_with_input(BenchmarkId::from_parameter(recipients), &recipients, |b, &n| {
            b.iter_batched_ref(
                || (0..n).map(|_| Outbound::new(1 << 20)).collect::<Vec<_>>(),
                |queues| {
                    let frame = SharedFrame::run(encode_frame(OpCode::Data(DataOp::Text), false, black_box(b"a twenty byte text!!")));
                    for q in queues.iter() {
                        black_box(q.push(&frame));
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
