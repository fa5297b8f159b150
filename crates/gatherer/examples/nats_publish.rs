//! The load generator of `scripts/bench.sh nats`: creates the stream as the gatherer
//! does (work-queue retention) and publishes a number of NDJSON messages of 1 000 events
//! (`scripts/bench/ndjson.lua`'s distribution) to `<stream>.events`, keeping a bounded
//! number of publish acknowledgements in flight, then prints how many the stream stored.
//!
//! `cargo run --release -p gatherer --example nats_publish -- nats://127.0.0.1:4222 pulse 50000`
//! (`-- URL --delete-stream NAME` deletes a stream when the benchmark is done with it).

use std::collections::VecDeque;

use detect::synth::Rng;

const IN_FLIGHT: usize = 256;
const BODIES: usize = 64;

#[tokio::main]
async fn main() -> Result<(), async_nats::Error> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .unwrap_or_else(|| "nats://127.0.0.1:4222".into());
    let stream = args.next().unwrap_or_else(|| "pulse".into());
    if stream == "--delete-stream" {
        let name = args.next().unwrap_or_default();
        let context = async_nats::jetstream::new(async_nats::connect(url).await?);
        context.delete_stream(&name).await?;
        return Ok(());
    }
    let messages: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let subject = format!("{stream}.events");
    let mut rng = Rng::new(17);
    let bodies: Vec<actix_web::web::Bytes> = (0..BODIES)
        .map(|_| {
            let lines: Vec<String> = (0..1_000)
                .map(|_| {
                    format!(
                        "{{\"label\":\"label{}\",\"id\":{},\"value\":{}}}",
                        rng.between(10.0, 101.0) as i64,
                        rng.between(10.0, 101.0) as i64,
                        rng.between(1.0, 101.0) as i64
                    )
                })
                .collect();
            lines.join("\n").into()
        })
        .collect();
    let context = async_nats::jetstream::new(async_nats::connect(url).await?);
    context
        .get_or_create_stream(async_nats::jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![subject.clone()],
            retention: async_nats::jetstream::stream::RetentionPolicy::WorkQueue,
            ..Default::default()
        })
        .await?;
    let mut pending = VecDeque::with_capacity(IN_FLIGHT);
    let mut stored = 0u64;
    let mut next = 0;
    while next < messages {
        if pending.len() == IN_FLIGHT {
            if let Some(ack) = pending.pop_front() {
                let ack: async_nats::jetstream::context::PublishAckFuture = ack;
                ack.await?;
                stored += 1;
            }
        }
        pending.push_back(
            context
                .publish(subject.clone(), bodies[next % BODIES].clone())
                .await?,
        );
        next += 1;
    }
    for ack in pending {
        ack.await?;
        stored += 1;
    }
    println!("{stored}");
    Ok(())
}
