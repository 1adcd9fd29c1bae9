//! What the accept loop, the handlers' threads and every
//! [`ShutdownHandle`] share: the registry of live connections, the shutdown
//! and drain flags, the waker, the counters.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use crate::failure::{panic_message, Failure};
use crate::per_ip::{PeerKey, PerIp, Refusal};
use crate::shutdown_handle::{Control, ShutdownHandle};
use crate::socket::{Connection, Socket};
use crate::stats::Outcome;
use crate::stream::StreamLimits;
use crate::waker::Waker;
use crate::{Address, Stats};

/// The `handle_error` hook: what to do with a failed request.
pub(crate) type ErrorHook = Arc<dyn Fn(&Address, &Failure) + Send + Sync>;

/// What happened to the connections that were live when a server shut down.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DrainReport {
    /// Connections that ended within the drain timeout: on their own, or,
    /// for those that asked for it ([`WhenDraining::EndWaitingRead`]),
    /// because the drain ended a read that waited for their next message.
    ///
    /// [`WhenDraining::EndWaitingRead`]: crate::WhenDraining::EndWaitingRead
    pub drained: usize,
    /// Connections still running at the deadline, whose sockets were shut
    /// down under their handlers.
    pub cut: usize,
}

pub(crate) struct Shared {
    pub(crate) stats: Stats,
    pub(crate) waker: Waker,
    shutdown: AtomicBool,
    draining: Arc<AtomicBool>,
    registry: Mutex<Registry>,
    /// Signalled whenever a connection ends.
    ended: Condvar,
    limit: usize,
    wait_when_full: bool,
    limits: StreamLimits,
    drain_timeout: Duration,
    /// In the `Sync` model the serving thread is the handler's thread, so
    /// another thread must watch the drain deadline.
    needs_watchdog: bool,
    handle_error: ErrorHook,
    /// Every connection begins with a TLS handshake with this
    /// configuration.
    tls: Option<Arc<rustls::ServerConfig>>,
}

#[derive(Default)]
struct Registry {
    /// Conversations per client address, and the key each live
    /// connection holds there.
    per_ip: PerIp,
    held: HashMap<u64, PeerKey>,
    /// The live connections, and the packets being handled (`None`: there
    /// is no socket of theirs to end).
    live: HashMap<u64, Option<Arc<Connection>>>,
    next_id: u64,
    /// The accept loop stopped polling the listener for want of a slot and
    /// must be woken when one frees.
    loop_waits_for_slot: bool,
    /// Connections live when the shutdown began, or registered after it.
    live_at_shutdown: usize,
    /// Connections cut at the drain deadline.
    cut: usize,
}

pub(crate) struct SharedConfig {
    pub(crate) limit: usize,
    pub(crate) wait_when_full: bool,
    pub(crate) limits: StreamLimits,
    pub(crate) drain_timeout: Duration,
    pub(crate) needs_watchdog: bool,
    pub(crate) handle_error: ErrorHook,
    pub(crate) max_per_ip: Option<usize>,
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
}

impl Shared {
    pub(crate) fn new(config: SharedConfig) -> std::io::Result<Shared> {
        Ok(Shared {
            stats: Stats::default(),
            waker: Waker::new()?,
            shutdown: AtomicBool::new(false),
            draining: Arc::new(AtomicBool::new(false)),
            registry: Mutex::new(Registry {
                per_ip: PerIp::new(config.max_per_ip),
                ..Registry::default()
            }),
            ended: Condvar::new(),
            limit: config.limit,
            wait_when_full: config.wait_when_full,
            limits: config.limits,
            drain_timeout: config.drain_timeout,
            needs_watchdog: config.needs_watchdog,
            handle_error: config.handle_error,
            tls: config.tls,
        })
    }

    /// A new, empty state with the same settings, for a prefork worker
    /// process: its own waker, registry and counters; one connection at a
    /// time, with a watchdog for the drain deadline; no per-address count
    /// (the parent keeps it for all workers).
    pub(crate) fn fresh_for_worker(&self) -> std::io::Result<Shared> {
        Shared::new(SharedConfig {
            limit: 1,
            wait_when_full: true,
            limits: self.limits,
            drain_timeout: self.drain_timeout,
            needs_watchdog: true,
            handle_error: Arc::clone(&self.handle_error),
            max_per_ip: None,
            tls: self.tls.clone(),
        })
    }

    /// The TLS configuration every connection begins with, if any.
    pub(crate) fn tls(&self) -> Option<&Arc<rustls::ServerConfig>> {
        self.tls.as_ref()
    }

    pub(crate) fn limits(&self) -> &StreamLimits {
        &self.limits
    }

    /// A handle on this server for its handlers and its owner.
    pub(crate) fn handle(self: &Arc<Self>) -> ShutdownHandle {
        ShutdownHandle::new(Arc::clone(self) as Arc<dyn Control>)
    }

    /// The flag a shutdown sets when the drain begins.
    pub(crate) fn draining_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.draining)
    }

    pub(crate) fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    fn registry(&self) -> MutexGuard<'_, Registry> {
        // A panic never happens while the lock is held (no user code runs
        // under it), but a poisoned lock must not take the server down.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn shutdown_requested(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// True if the accept loop may accept now. When the limit is reached
    /// and the policy is to wait, it also asks to be woken when a slot
    /// frees, so that the loop never polls a listener it cannot serve.
    pub(crate) fn may_accept(&self) -> bool {
        if !self.wait_when_full {
            return true;
        }
        let mut registry = self.registry();
        if registry.live.len() < self.limit {
            true
        } else {
            registry.loop_waits_for_slot = true;
            false
        }
    }

    /// Takes a slot for a new connection, and one of its address's; the
    /// socket back with the reason when the limit is reached (only
    /// possible when the policy is to refuse) or the address has its most.
    pub(crate) fn register(
        &self,
        socket: Socket,
        peer: Address,
    ) -> Result<(u64, Arc<Connection>), (Socket, Refusal)> {
        let mut registry = self.registry();
        if registry.live.len() >= self.limit {
            return Err((socket, Refusal::Full));
        }
        let key = PeerKey::of(&peer).filter(|_| registry.per_ip.is_on());
        if let Some(key) = key {
            if !registry.per_ip.take(key) {
                return Err((socket, Refusal::PerIp));
            }
        }
        if self.shutdown_requested() {
            registry.live_at_shutdown += 1;
        }
        let conn = Arc::new(Connection::new(
            socket,
            peer,
            Some(Arc::clone(&self.draining)),
        ));
        let id = registry.next_id;
        registry.next_id += 1;
        if let Some(key) = key {
            registry.held.insert(id, key);
        }
        registry.live.insert(id, Some(Arc::clone(&conn)));
        self.stats.set_active(registry.live.len());
        Ok((id, conn))
    }

    /// Takes a slot for a received packet; `None` when the limit is
    /// reached (only possible when the policy is to refuse).
    pub(crate) fn register_packet(&self) -> Option<u64> {
        let mut registry = self.registry();
        if registry.live.len() >= self.limit {
            return None;
        }
        if self.shutdown_requested() {
            registry.live_at_shutdown += 1;
        }
        let id = registry.next_id;
        registry.next_id += 1;
        registry.live.insert(id, None);
        self.stats.set_active(registry.live.len());
        Some(id)
    }

    /// Frees the slot of an ended connection.
    pub(crate) fn release(&self, id: u64) {
        let mut registry = self.registry();
        registry.live.remove(&id);
        if let Some(key) = registry.held.remove(&id) {
            registry.per_ip.release(key);
        }
        self.stats.set_active(registry.live.len());
        if registry.loop_waits_for_slot && registry.live.len() < self.limit {
            registry.loop_waits_for_slot = false;
            self.waker.wake();
        }
        drop(registry);
        self.ended.notify_all();
    }

    /// True if connections are counted per address.
    pub(crate) fn limits_per_ip(&self) -> bool {
        self.registry().per_ip.is_on()
    }

    /// Counts a conversation of `key` for the process models, whose
    /// connections are not registered here; false if the address has its
    /// most already.
    pub(crate) fn take_peer(&self, key: PeerKey) -> bool {
        self.registry().per_ip.take(key)
    }

    /// A conversation counted by [`Shared::take_peer`] ended.
    pub(crate) fn release_peer(&self, key: PeerKey) {
        self.registry().per_ip.release(key);
    }

    /// Frees the slot of a connection that never reached its handler.
    pub(crate) fn abandon(&self, id: u64) {
        self.stats.count(Outcome::LOST);
        self.release(id);
    }

    /// Gives a request's failure to the `handle_error` hook.
    pub(crate) fn handle_error(&self, peer: &Address, failure: &Failure) {
        // The hook is user code: a panic in it must not take a worker down.
        if let Err(payload) =
            panic::catch_unwind(AssertUnwindSafe(|| (self.handle_error)(peer, failure)))
        {
            log::error!(
                "{peer}: handle_error panicked while reporting \"{failure}\": {}",
                panic_message(payload.as_ref())
            );
        }
    }

    /// Starts a shutdown: the accept loop stops at once; reads waiting for
    /// the next message end at once in the conversations that asked for it
    /// (`WhenDraining::EndWaitingRead`); every other conversation goes on
    /// until it ends or the drain deadline passes. Never blocks.
    pub(crate) fn request_shutdown(self: &Arc<Self>) {
        let busy = {
            // The flag is set under the registry's lock, so that every
            // connection is counted once: live now, or registered after.
            let mut registry = self.registry();
            if self.shutdown.swap(true, Ordering::SeqCst) {
                return;
            }
            registry.live_at_shutdown = registry.live.len();
            self.draining.store(true, Ordering::SeqCst);
            // The loop closes the listener meanwhile: ending thousands of
            // idle conversations takes a system call each.
            self.waker.wake();
            registry
                .live
                .values()
                .filter(|c| !c.as_ref().is_some_and(|c| c.close_if_idle()))
                .count()
        };
        if busy > 0 && self.needs_watchdog {
            let shared = Arc::clone(self);
            let deadline = Instant::now() + self.drain_timeout;
            let _ = thread::Builder::new()
                .name("drain watchdog".into())
                .spawn(move || shared.drain_until(deadline));
        }
    }

    /// Lets the live connections end until `deadline`, then cuts the rest.
    pub(crate) fn drain_until(&self, deadline: Instant) {
        let mut registry = self.registry();
        while !registry.live.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            registry = self
                .ended
                .wait_timeout(registry, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        for conn in registry.live.values() {
            match conn {
                Some(conn) => {
                    log::warn!(
                        "{}: still busy at the drain deadline; cutting the connection",
                        conn.peer
                    );
                    conn.cut();
                }
                None => log::warn!("a datagram's handler is still busy at the drain deadline"),
            }
        }
        registry.cut += registry.live.len();
    }

    /// What became of the connections live at shutdown, once drained.
    pub(crate) fn drain_report(&self) -> DrainReport {
        let registry = self.registry();
        DrainReport {
            drained: registry.live_at_shutdown.saturating_sub(registry.cut),
            cut: registry.cut,
        }
    }

    /// Waits up to `grace` for every connection to end (after a cut they
    /// end as soon as their handler touches the socket).
    pub(crate) fn wait_empty(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        let mut registry = self.registry();
        while !registry.live.is_empty() {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            registry = self
                .ended
                .wait_timeout(registry, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }

    /// Cuts every live connection at once (dropping a server).
    pub(crate) fn cut_all(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        self.draining.store(true, Ordering::SeqCst);
        for conn in self.registry().live.values().flatten() {
            conn.cut();
        }
    }
}

impl Control for Shared {
    fn shutdown(self: Arc<Self>) {
        self.request_shutdown();
    }

    fn is_shutdown(&self) -> bool {
        self.shutdown_requested()
    }

    fn stats(&self) -> Stats {
        self.stats.clone()
    }
}
