//! Fan-out of one message to 1 … 10,000 connections: the frame is made once
//! and each recipient's outbound queue copies it (a small frame) into the
//! buffer of small frames it holds, made here since every queue starts
//! empty. This is the per-recipient cost a broadcast pays before any socket
//! write.
//! Run: `cargo bench -p switchboard-net`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use switchboard_net::Outbound;
use switchboard_proto::frame::{DataOp, OpCode, SharedFrame};

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    for recipients in [1usize, 10, 100, 1000, 10_000] {
        group.throughput(Throughput::Elements(recipients as u64));
        group.bench_with_input(BenchmarkId::from_parameter(recipients), &recipients, |b, &n| {
            b.iter_batched_ref(
                || (0..n).map(|_| Outbound::new(1 << 20)).collect::<Vec<_>>(),
                |queues| {
                    let frame = SharedFrame::new(OpCode::Data(DataOp::Text), false, black_box(&Bytes::from_static(b"a twenty byte text!!")));
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
