//! TLS 1.3 session tickets for the exec upgrade's connections, more of them than rustls' own
//! cache keeps.
//!
//! rustls' cache keeps 8 tickets per server, and a batch of new sessions started in one turn
//! of an event loop outruns it, so handshakes past the eighth were full ones. Everything but
//! TLS 1.3 tickets (the key exchange hint, TLS 1.2 sessions) stays with rustls' cache.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Mutex;

use rustls::NamedGroup;
use rustls::client::{
    ClientSessionMemoryCache, ClientSessionStore, Tls12ClientSessionValue, Tls13ClientSessionValue,
};
use rustls::pki_types::ServerName;

/// Tickets kept, over all servers (a connector talks to one). A ticket holds the server's
/// certificate chain, so this is about half a megabyte at most for a typical chain.
pub const TICKETS: usize = 256;

/// The session store: up to [`TICKETS`] TLS 1.3 tickets, the newest taken first, each once.
pub struct Tickets {
    others: ClientSessionMemoryCache,
    tickets: Mutex<VecDeque<(ServerName<'static>, Tls13ClientSessionValue)>>,
    capacity: usize,
}

impl Tickets {
    /// A store that keeps up to `capacity` tickets (the oldest go first).
    pub fn new(capacity: usize) -> Tickets {
        Tickets {
            others: ClientSessionMemoryCache::new(16),
            tickets: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    /// Tickets held now.
    fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, VecDeque<(ServerName<'static>, Tls13ClientSessionValue)>> {
        // A panic elsewhere while holding it leaves a usable queue of tickets.
        self.tickets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl fmt::Debug for Tickets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tickets")
            .field("held", &self.len())
            .field("capacity", &self.capacity)
            .finish()
    }
}

impl ClientSessionStore for Tickets {
    fn set_kx_hint(&self, server_name: ServerName<'static>, group: NamedGroup) {
        self.others.set_kx_hint(server_name, group);
    }

    fn kx_hint(&self, server_name: &ServerName<'_>) -> Option<NamedGroup> {
        self.others.kx_hint(server_name)
    }

    fn set_tls12_session(&self, server_name: ServerName<'static>, value: Tls12ClientSessionValue) {
        self.others.set_tls12_session(server_name, value);
    }

    fn tls12_session(&self, server_name: &ServerName<'_>) -> Option<Tls12ClientSessionValue> {
        self.others.tls12_session(server_name)
    }

    fn remove_tls12_session(&self, server_name: &ServerName<'static>) {
        self.others.remove_tls12_session(server_name);
    }

    fn insert_tls13_ticket(
        &self,
        server_name: ServerName<'static>,
        value: Tls13ClientSessionValue,
    ) {
        let mut tickets = self.lock();
        if tickets.len() >= self.capacity {
            tickets.pop_front();
        }
        tickets.push_back((server_name, value));
    }

    fn take_tls13_ticket(
        &self,
        server_name: &ServerName<'static>,
    ) -> Option<Tls13ClientSessionValue> {
        let mut tickets = self.lock();
        let newest = tickets.iter().rposition(|(name, _)| name == server_name)?;
        tickets.remove(newest).map(|(_, ticket)| ticket)
    }
}
