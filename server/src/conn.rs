//! Connections: how many the service holds, and from whom.
//!
//! Every connection takes a slot before anything is read from it (before
//! the TLS handshake, too): at most [`Limits::max_connections`] in all and
//! [`Limits::max_connections_per_address`] from one client address. A
//! connection beyond either is closed at once, so one client holding idle
//! or slow connections cannot keep a device out; the header, handshake and
//! idle timeouts (`run.rs`) then close what it holds.
//!
//! Behind a reverse proxy every connection comes from the proxy's address:
//! raise the per-address cap to the proxy's pool, or rely on the proxy's
//! own limits.
//!
//! [`Limits::max_connections`]: crate::Limits::max_connections
//! [`Limits::max_connections_per_address`]: crate::Limits::max_connections_per_address

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Open connections, in all and per client address.
#[derive(Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// The slots: shared by every connection of one service.
#[derive(Clone)]
pub(crate) struct Slots {
    counts: Arc<Mutex<Counts>>,
    max: usize,
    per_address: usize,
}

/// A connection's slot, given back when the connection closes.
pub(crate) struct Slot {
    counts: Arc<Mutex<Counts>>,
    address: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_address.get_mut(&self.address) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.by_address.remove(&self.address);
            }
        }
    }
}

impl Slots {
    pub(crate) fn new(max: usize, per_address: usize) -> Slots {
        Slots {
            counts: Arc::default(),
            max: max.max(1),
            per_address: per_address.max(1),
        }
    }

    /// A slot for a connection from `address`, if one is free.
    pub(crate) fn take(&self, address: IpAddr) -> Option<Slot> {
        let mut c = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let mine = c.by_address.get(&address).copied().unwrap_or(0);
        if c.total >= self.max || mine >= self.per_address {
            return None;
        }
        c.total += 1;
        *c.by_address.entry(address).or_insert(0) += 1;
        Some(Slot {
            counts: self.counts.clone(),
            address,
        })
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

/// An acceptor that takes a slot before handing the connection to `inner`
/// (plain, or the TLS handshake).
#[derive(Clone)]
pub(crate) struct Capped<A> {
    inner: A,
    slots: Slots,
}

impl<A> Capped<A> {
    pub(crate) fn new(inner: A, slots: Slots) -> Capped<A> {
        Capped { inner, slots }
    }
}

/// A stream that holds its connection's slot.
pub(crate) struct Held<S> {
    stream: S,
    _slot: Slot,
}

type Accepting<S, T> = Pin<Box<dyn Future<Output = io::Result<(Held<S>, T)>> + Send>>;

impl<A, S> Accept<TcpStream, S> for Capped<A>
where
    A: Accept<TcpStream, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Held<A::Stream>;
    type Service = A::Service;
    type Future = Accepting<A::Stream, A::Service>;

    fn accept(&self, stream: TcpStream, service: S) -> Self::Future {
        let slot = stream
            .peer_addr()
            .ok()
            .and_then(|peer| self.slots.take(peer.ip()));
        let Some(slot) = slot else {
            // Dropping the stream closes it before anything is read.
            drop(stream);
            return Box::pin(async { Err(io::Error::other("connection limit reached")) });
        };
        let accepting = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = accepting.await?;
            Ok((
                Held {
                    stream,
                    _slot: slot,
                },
                service,
            ))
        })
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Held<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Held<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_in_all_and_per_address_and_come_back() {
        let slots = Slots::new(3, 2);
        let (a, b): (IpAddr, IpAddr) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        let a1 = slots.take(a).unwrap();
        let _a2 = slots.take(a).unwrap();
        assert!(slots.take(a).is_none(), "per address");
        let _b1 = slots.take(b).unwrap();
        assert!(slots.take(b).is_none(), "in all");
        drop(a1);
        assert_eq!(slots.open(), 2);
        assert!(
            slots.take(b).is_some(),
            "a closed connection gives its slot back"
        );
    }
}
