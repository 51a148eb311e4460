//! live-torrent: an edge worker that puts a BitTorrent magnet link in front of
//! every media segment of an HLS feed, so viewers' browsers can share them.
//!
//! The pure modules below never touch the Workers runtime and are tested
//! natively; `platform` is the thin wasm-only layer (requests, KV, Cache API).

pub mod annotate;
pub mod bencode;
pub mod config;
pub mod error;
pub mod links;
pub mod magnet;
pub mod ops;
pub mod playlist;
pub mod playlist_cache;
pub mod recent;
pub mod record;
pub mod segment;
pub mod torrent;
pub mod tracker;

#[cfg(target_arch = "wasm32")]
mod platform;
