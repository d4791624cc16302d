//! The network model: an event-driven scheduler of message transfers over per-node links.
//!
//! Node `i` has an uplink of `uplink[i]` and a downlink of `downlink[i]` bytes per second. Rates
//! are recomputed whenever a transfer starts, sends its last byte or is cancelled, by one of two
//! rules ([`Sharing`]):
//! - `MaxMin` (progressive filling, the fluid model of TCP): every transfer's rate rises together
//!   until a link is full; the transfers on it keep that rate, the others go on rising. A transfer
//!   held back by a slow receiver leaves the rest of its sender's uplink to the others. Only the
//!   transfers linked (through shared links) to a link whose count changed are recomputed: the
//!   others' rates cannot change.
//! - `MinShare`: a transfer gets the smaller of its two equal shares,
//!   `uplink[src] / (transfers sending from src)` and `downlink[dst] / (transfers sending to dst)`;
//!   a share left unused at one end is not handed to the others.
//!
//! A rate of `inf` is an unlimited link: the other end rules, and a transfer unlimited at both ends
//! sends its last byte when it starts. Bytes flow at that rate; the message is *delivered*
//! `latency(src, dst)` seconds after its last byte left: latency is added once transmission is
//! complete and holds no bandwidth, so a sender's next message may start while the previous one is
//! still in flight.
//!
//! A transfer starts at its ready time ([`Queueing::Concurrent`]); with a FIFO a queue's transfers
//! go out one at a time in submission order (the next one starts when the previous one's last byte
//! left, or at its own ready time if later; a head not yet ready holds back the ones behind it).
//! The queue is the sender's ([`Queueing::PerSender`]) or the (sender, receiver) pair's
//! ([`Queueing::PerPair`]: one socket per peer, as DivShare; different peers' queues send at the
//! same time and share the uplink).
//!
//! Times are `f64` seconds. Everything is deterministic: transfer ids are submission indices,
//! events at equal times are handled together (every last byte first, then every start, then one
//! rate update of the transfers they touch), and deliveries at equal times come out by id. Under
//! min-share an event costs O(transfers active at the nodes it touches + log(events queued));
//! under max-min, a refill of the region of full links it reaches (`rates::max_min`).
//!
//! `model` holds the network's description (latency, queueing, sharing) and `transfer` a
//! transfer's record; `scheduler` the scheduler's tables and bookkeeping, on which build, each
//! on the ones before: `rates` (link sharing), `events` (the event loop), `submit`
//! (submissions and cancellations), `state` (the checkpoint and its export) and `restore`
//! (a scheduler rebuilt from a checked checkpoint).

mod events;
mod model;
mod rates;
mod restore;
mod scheduler;
mod state;
mod submit;
#[cfg(test)]
mod tests;
mod transfer;

pub use model::{Latency, Queueing, Sharing};
pub use scheduler::Scheduler;
pub use state::{SchedulerState, TransferRows};
pub use transfer::{Delivery, Schedule, MAX_BYTES};
