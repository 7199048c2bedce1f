//! Delivery: where an accepted message waits until a stream takes it. Each
//! agent online has an [`outbox`] feeding its stream; an agent that is away
//! has an [`inbox`] under its name; both are in the [`journal`] on disk
//! until handed to a stream.

pub mod inbox;
pub mod journal;
pub mod outbox;

pub use outbox::{
    Generation, Outbox, OutboxStream, PushError, RESUME_WINDOW_AGE, RESUME_WINDOW_BYTES,
    parse_event_id,
};
