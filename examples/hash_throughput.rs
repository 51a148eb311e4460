//! Native throughput of the worker's piece hashing (the same `PieceHasher`
//! the wasm build runs), for `bench/hashing.mjs`: hashes a 2 MiB segment in
//! 16 KiB chunks, repeatedly, and prints one JSON line.
//!
//!     cargo run --release --example hash_throughput

use std::time::Instant;

use live_torrent::torrent::PieceHasher;

const SEGMENT: usize = 2 * 1024 * 1024;
const CHUNK: usize = 16 * 1024;
const ROUNDS: usize = 200;

fn main() {
    let segment: Vec<u8> = (0..SEGMENT).map(|i| (i as u64).wrapping_mul(2_654_435_761).to_le_bytes()[1]).collect();
    let mut pieces = 0;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let mut hasher = PieceHasher::new(65_536);
        for chunk in segment.chunks(CHUNK) {
            hasher.update(chunk);
        }
        pieces += hasher.finish("bench.bin".into()).pieces.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    let mb_per_s = (SEGMENT * ROUNDS) as f64 / 1e6 / seconds;
    println!(
        "{{\"engine\":\"native\",\"mbPerSecond\":{mb_per_s:.1},\"msPerSegment\":{:.3},\"pieces\":{pieces}}}",
        seconds * 1000.0 / ROUNDS as f64
    );
}
