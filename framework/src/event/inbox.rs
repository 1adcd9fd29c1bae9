//! [`Inbox`]: how other threads reach a loop: conversations handed to it
//! (when the server has several loops), coroutines whose
//! [`blocking`](super::blocking) work is done, and the word to stop. A
//! mutex-guarded list and a `mio::Waker` (an eventfd in the loop's epoll).

use std::sync::{Mutex, MutexGuard};

use mio::{Registry, Token, Waker};

use crate::conversation::Admitted;

/// The token of the loop's waker; coroutines have the others.
pub(crate) const WAKER: Token = Token(usize::MAX);

/// What a loop is asked to do beside its conversations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum Order {
    #[default]
    Run,
    /// End once no conversation is left.
    Stop,
    /// End now, dropping the conversations left (the server was dropped).
    Abandon,
}

#[derive(Default)]
pub(crate) struct Mail {
    pub(crate) arrived: Vec<Admitted>,
    pub(crate) woken: Vec<Token>,
    pub(crate) order: Order,
}

pub(crate) struct Inbox {
    mail: Mutex<Mail>,
    waker: Waker,
}

impl Inbox {
    pub(crate) fn new(registry: &Registry) -> std::io::Result<Inbox> {
        Ok(Inbox {
            mail: Mutex::new(Mail::default()),
            waker: Waker::new(registry, WAKER)?,
        })
    }

    fn mail(&self) -> MutexGuard<'_, Mail> {
        self.mail.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Hands a conversation to the loop.
    pub(crate) fn deliver(&self, admitted: Admitted) {
        self.mail().arrived.push(admitted);
        self.wake();
    }

    /// Asks the loop to resume the coroutine of `token`.
    pub(crate) fn wake_task(&self, token: Token) {
        self.mail().woken.push(token);
        self.wake();
    }

    pub(crate) fn order(&self, order: Order) {
        self.mail().order = order;
        self.wake();
    }

    /// Takes what has arrived, leaving empty lists (their capacity swapped
    /// with `into`'s, so a busy loop allocates nothing).
    pub(crate) fn take(&self, into: &mut Mail) -> Order {
        let mut mail = self.mail();
        std::mem::swap(&mut mail.arrived, &mut into.arrived);
        std::mem::swap(&mut mail.woken, &mut into.woken);
        mail.order
    }

    fn wake(&self) {
        if let Err(e) = self.waker.wake() {
            log::error!("cannot wake an event loop: {e}");
        }
    }
}
