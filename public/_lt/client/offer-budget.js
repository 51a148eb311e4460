// How many WebRTC offers a segment torrent's announce carries.

/**
 * WebTorrent's WebSocket tracker client makes at most 5 WebRTC offers per
 * announce, and every segment torrent announces. An offer is a peer
 * connection that waits up to 50 s for an answer, and the tracker can only
 * hand it to a viewer already in the segment's swarm.
 */
export const MAX_OFFERS_PER_ANNOUNCE = 5

/**
 * Offers worth making when announcing a new segment: one per viewer of the
 * stream we are connected to, plus one for a viewer we do not know yet, at
 * most `max` (the `maxOffersPerAnnounce` setting) and at most
 * MAX_OFFERS_PER_ANNOUNCE. With always 5, a viewer with one peer made six peer
 * connections per segment and used one (bench/p2p-share.mjs, second table).
 * Viewers we don't know still reach us: their own announces carry offers
 * that the tracker hands to us.
 */
export function offersPerAnnounce (connectedPeers, max = MAX_OFFERS_PER_ANNOUNCE) {
  return Math.max(1, Math.min(max, MAX_OFFERS_PER_ANNOUNCE, connectedPeers + 1))
}

/**
 * Offers for a segment's announce: none once the stream mesh has a link (its
 * viewers reach us over the connections kept, stream-mesh.js, and a
 * per-segment connection would only duplicate one), else offersPerAnnounce.
 */
export function segmentOffers ({ meshLinks, connectedPeers, max = MAX_OFFERS_PER_ANNOUNCE }) {
  return meshLinks > 0 ? 0 : offersPerAnnounce(connectedPeers, max)
}
