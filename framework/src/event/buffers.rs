//! Read and write buffers lent to the conversations of one loop while
//! they run. A conversation that parks with nothing buffered gives its
//! buffers back, so an idle connection holds none; only one coroutine of
//! a loop runs at a time, so a loop needs about one of each, however many
//! conversations it holds.

use std::cell::RefCell;

/// Most buffers of each kind kept by one thread.
const KEEP: usize = 4;

thread_local! {
    static READ: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static WRITE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A read buffer of `len` bytes (a kept one's old contents are left: the
/// reader tracks which bytes are its own).
pub(crate) fn take_read(len: usize) -> Vec<u8> {
    READ.with_borrow_mut(|free| free.pop())
        .filter(|b| b.len() == len)
        .unwrap_or_else(|| vec![0; len])
}

/// An empty write buffer with room for `capacity` bytes.
pub(crate) fn take_write(capacity: usize) -> Vec<u8> {
    WRITE
        .with_borrow_mut(|free| free.pop())
        .filter(|b| b.capacity() >= capacity)
        .unwrap_or_else(|| Vec::with_capacity(capacity))
}

/// Gives a read buffer back for another conversation of this thread.
pub(crate) fn give_read(buffer: Vec<u8>) {
    keep(&READ, buffer);
}

/// Gives a write buffer back, emptied.
pub(crate) fn give_write(mut buffer: Vec<u8>) {
    buffer.clear();
    keep(&WRITE, buffer);
}

fn keep(pool: &'static std::thread::LocalKey<RefCell<Vec<Vec<u8>>>>, buffer: Vec<u8>) {
    if buffer.capacity() == 0 {
        return;
    }
    pool.with_borrow_mut(|free| {
        if free.len() < KEEP {
            free.push(buffer);
        }
    });
}
