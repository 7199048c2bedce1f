//! Server-sent events: the bytes of an agent's stream. Each message is one
//! event (`data:` its JSON-RPC notification as serialized when it was queued,
//! `id:` its event id), written in one buffer; a comment goes out when the
//! stream has been quiet for the keep-alive interval, so proxies in between
//! keep it.

use std::{
    convert::Infallible,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    http::{HeaderValue, StatusCode, header},
    response::Response,
};
use futures::Stream;
use tokio::time::{Instant, Sleep};

use crate::mcp::sessions::StreamItem;

const KEEP_ALIVE_COMMENT: &[u8] = b":\n\n";

/// One event: `data` (compact JSON holds no raw newline, so it is one
/// line), then its `id`, then a `retry` hint.
pub fn event(data: &str, id: Option<&str>, retry: Option<Duration>) -> Bytes {
    let mut buffer = Vec::with_capacity(data.len() + 64);
    buffer.extend_from_slice(b"data: ");
    buffer.extend_from_slice(data.as_bytes());
    buffer.push(b'\n');
    if let Some(id) = id {
        buffer.extend_from_slice(b"id: ");
        buffer.extend_from_slice(id.as_bytes());
        buffer.push(b'\n');
    }
    if let Some(retry) = retry {
        buffer.extend_from_slice(format!("retry: {}\n", retry.as_millis()).as_bytes());
    }
    buffer.push(b'\n');
    buffer.into()
}

fn encode(item: StreamItem) -> Bytes {
    match item {
        StreamItem::Message(delivered) => event(&delivered.json, Some(&delivered.event_id()), None),
        StreamItem::Retry(retry) => event("", None, Some(retry)),
    }
}

/// An SSE body over `items`, opened by `first` when given.
struct EventStream<S> {
    first: Option<Bytes>,
    items: S,
    keep_alive: Duration,
    quiet_until: Pin<Box<Sleep>>,
}

impl<S: Stream<Item = StreamItem> + Unpin> Stream for EventStream<S> {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(first) = self.first.take() {
            return Poll::Ready(Some(Ok(first)));
        }
        match Pin::new(&mut self.items).poll_next(cx) {
            Poll::Ready(Some(item)) => {
                let next = Instant::now() + self.keep_alive;
                self.quiet_until.as_mut().reset(next);
                return Poll::Ready(Some(Ok(encode(item))));
            }
            Poll::Ready(None) => return Poll::Ready(None),
            Poll::Pending => {}
        }
        if self.quiet_until.as_mut().poll(cx).is_ready() {
            let next = Instant::now() + self.keep_alive;
            self.quiet_until.as_mut().reset(next);
            return Poll::Ready(Some(Ok(Bytes::from_static(KEEP_ALIVE_COMMENT))));
        }
        Poll::Pending
    }
}

/// The `text/event-stream` response carrying `items`, after `first`.
pub fn response(
    first: Option<Bytes>,
    items: impl Stream<Item = StreamItem> + Send + Unpin + 'static,
    keep_alive: Duration,
) -> Response {
    let body = EventStream {
        first,
        items,
        keep_alive,
        quiet_until: Box::pin(tokio::time::sleep(keep_alive)),
    };
    let mut response = Response::new(Body::from_stream(body));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_data_then_id_then_retry() {
        assert_eq!(
            &event("", Some("0"), Some(Duration::from_millis(500)))[..],
            b"data: \nid: 0\nretry: 500\n\n"
        );
    }
}
