// Whether a segment is joined as a torrent that announces to the tracker,
// how many WebRTC offers an announce carries, and how many links a stream's
// mesh takes.

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
 * Whether a segment joined now is a torrent that announces to the magnet's
 * trackers. Once the stream mesh has a link, the segment's peers reach us
 * over the mesh's connections and the segment is exchanged there, with no
 * torrent (stream-mesh.js): an announce would only let a viewer outside the
 * mesh send us an offer for that one segment, which the stream swarm's own
 * announce does for every segment. A viewer in the mesh so makes no segment
 * announce, and spares the tracker three messages a segment (started,
 * completed, stopped) and their replies. A viewer whose mesh has no link (it
 * has just joined, or lost every link) joins its segments as torrents that
 * announce, so two such viewers still meet in a segment's swarm.
 */
export function announcesSegment ({ meshLinks }) {
  return !(meshLinks > 0)
}

/**
 * Offers for a segment's announce, asked at each announce: as
 * offersPerAnnounce while the stream mesh has no link, none once it has one
 * (a per-segment connection would only duplicate one it keeps). A torrent
 * joined before the first link goes on announcing (completed, at the
 * tracker's interval, stopped), from then on without offers.
 */
export function segmentOffers ({ meshLinks, connectedPeers, max = MAX_OFFERS_PER_ANNOUNCE }) {
  return announcesSegment({ meshLinks }) ? offersPerAnnounce(connectedPeers, max) : 0
}

/**
 * A stream mesh takes links up to this many times the links it wants: a
 * viewer that has what it wants makes no more offers but still takes those
 * of viewers who join later, until it has this many.
 */
export const MESH_LINK_HEADROOM = 2

/**
 * Offers for an announce of the stream swarm: up to what is missing of the
 * `wanted` links, at most MAX_OFFERS_PER_ANNOUNCE, none once it has them.
 * WebTorrent caps only TCP and uTP peers, and each announce (at the
 * tracker's interval, and after a lost link) made 5 offers, so a viewer of a
 * large audience ended up linked to everyone (bench/tracker-load.mjs, mesh
 * mode with churn: 14 to 31 links a viewer within a minute).
 */
export function streamOffers ({ links, wanted }) {
  return links < wanted ? Math.min(MAX_OFFERS_PER_ANNOUNCE, wanted - links) : 0
}

/** Whether a stream mesh with `links` links takes one more. */
export function takesLink ({ links, wanted }) {
  return links < MESH_LINK_HEADROOM * wanted
}
