//! [`StackPool`]: coroutine stacks kept for reuse. A fresh stack costs an
//! `mmap`, an `mprotect` for its guard page and, at the end, a `munmap`;
//! a pooled one costs nothing, and its touched pages are already there.

use corosensei::stack::DefaultStack;

/// Most stacks kept for reuse by one loop: enough for a burst of
/// connections to reuse them all, little memory (touched pages only)
/// when the burst is over.
const KEEP: usize = 256;

pub(crate) struct StackPool {
    free: Vec<DefaultStack>,
    size: usize,
}

impl StackPool {
    pub(crate) fn new(size: usize) -> StackPool {
        StackPool {
            free: Vec::new(),
            size,
        }
    }

    /// A stack: a kept one, or a new one.
    pub(crate) fn take(&mut self) -> std::io::Result<DefaultStack> {
        match self.free.pop() {
            Some(stack) => Ok(stack),
            None => DefaultStack::new(self.size),
        }
    }

    /// Keeps a stack whose coroutine has ended, if there is room.
    pub(crate) fn give(&mut self, stack: DefaultStack) {
        if self.free.len() < KEEP {
            self.free.push(stack);
        }
    }
}
