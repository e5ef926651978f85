//! A pool of logged-in read-write sessions on one token.
//!
//! A cryptoki `Session` is `Send` but not `Sync`, and PKCS#11 allows one operation at a time per
//! session, so concurrent callers never share one: each call leases a session for the duration of its
//! token call and gives it back. The pool opens sessions lazily up to its size; more callers wait.
//!
//! When a call finds the session, the token or the library gone (see
//! [`is_connection_lost`]), the pool starts a new *epoch*: idle
//! sessions are dropped, sessions still leased are dropped when they come back, the slot is looked up
//! again by label on the next call (modules may reassign slot ids) and the first new session logs in
//! again. The failed call reports a retryable error; the next one reconnects.

use std::fmt;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, SessionState};
use cryptoki::slot::Slot;
use kmskit_core::{Error, Result};

use crate::config::{Pin, Pkcs11Config};
use crate::error::{is_connection_lost, map_err};
use crate::module;

pub(crate) struct Pool {
    ctx: Pkcs11,
    module: PathBuf,
    label: String,
    pin: Pin,
    size: usize,
    state: Mutex<State>,
    returned: Condvar,
}

struct State {
    idle: Vec<Session>,
    /// Sessions of the current epoch that exist or are being opened (idle or leased).
    open: usize,
    slot: Option<Slot>,
    epoch: u64,
    /// Whether the sessions of earlier epochs have dead handles (forgotten, not closed: a handle
    /// number may have been reused by a session opened since).
    stale_handles_dead: bool,
}

/// A session leased from the pool; goes back on drop.
pub(crate) struct Lease<'a> {
    pool: &'a Pool,
    session: Option<Session>,
    epoch: u64,
}

impl Pool {
    /// Loads and initialises the module (once per process), finds the token, opens a first session
    /// and logs in.
    pub(crate) fn connect(config: &Pkcs11Config) -> Result<Pool> {
        let ctx = module::context(config.module())?;
        let pool = Pool {
            ctx,
            module: config.module().to_owned(),
            label: config.token_label().to_owned(),
            pin: config.pin().duplicate(),
            size: config.pool_size(),
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                slot: None,
                epoch: 0,
                stale_handles_dead: false,
            }),
            returned: Condvar::new(),
        };
        // Fail at open, not on the first call, for a missing token or a wrong PIN.
        drop(pool.get()?);
        Ok(pool)
    }

    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn module(&self) -> &std::path::Path {
        &self.module
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change to State is complete before the guard drops; a panic cannot leave it torn.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Leases a session, opening one when none is idle and the pool is not full, else waiting.
    pub(crate) fn get(&self) -> Result<Lease<'_>> {
        let mut st = self.lock();
        loop {
            if let Some(session) = st.idle.pop() {
                return Ok(Lease {
                    pool: self,
                    session: Some(session),
                    epoch: st.epoch,
                });
            }
            if st.open < self.size {
                st.open += 1;
                let (epoch, slot) = (st.epoch, st.slot);
                drop(st);
                return match self.open_session(slot) {
                    Ok((session, slot)) => {
                        let mut st = self.lock();
                        if st.epoch == epoch {
                            st.slot = Some(slot);
                        }
                        Ok(Lease {
                            pool: self,
                            session: Some(session),
                            epoch,
                        })
                    }
                    Err(e) => {
                        let mut st = self.lock();
                        if st.epoch == epoch {
                            st.open -= 1;
                            if is_connection_lost(&e) {
                                st.slot = None;
                            }
                        }
                        drop(st);
                        self.returned.notify_one();
                        Err(e)
                    }
                };
            }
            st = self.returned.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Opens a read-write session on the token and makes sure it is logged in. Recovers once from a
    /// library finalised behind our back (`C_Initialize` again) and from a moved token (look the
    /// slot up again).
    fn open_session(&self, cached: Option<Slot>) -> Result<(Session, Slot)> {
        let subject = format!("token {:?}", self.label);
        let mut slot = cached;
        for attempt in 0..2 {
            let s = match slot {
                Some(s) => s,
                None => match module::find_slot(&self.ctx, &self.label) {
                    Ok(s) => s,
                    Err(_) if attempt == 0 && self.library_needs_init() => {
                        module::initialize(&self.ctx, &subject)?;
                        continue;
                    }
                    Err(e) => return Err(e),
                },
            };
            match self.ctx.open_rw_session(s) {
                Ok(session) => {
                    module::ensure_login(&session, &self.module, &self.label, &self.pin)?;
                    return Ok((session, s));
                }
                Err(CkError::Pkcs11(rv, _))
                    if attempt == 0
                        && matches!(
                            rv,
                            RvError::CryptokiNotInitialized
                                | RvError::SlotIdInvalid
                                | RvError::TokenNotPresent
                                | RvError::DeviceRemoved
                        ) =>
                {
                    if rv == RvError::CryptokiNotInitialized {
                        module::initialize(&self.ctx, &subject)?;
                    }
                    slot = None;
                }
                Err(e) => return Err(map_err(e, &subject)),
            }
        }
        Err(Error::Unavailable {
            message: format!("cannot open a session on {subject}"),
            retryable: true,
            source: None,
        })
    }

    fn library_needs_init(&self) -> bool {
        matches!(
            self.ctx.get_library_info(),
            Err(CkError::Pkcs11(RvError::CryptokiNotInitialized, _))
        )
    }

    /// Starts a new epoch after a connection loss seen on a session of `epoch` (no-op when another
    /// caller already did).
    fn reset(&self, epoch: u64, handles_dead: bool) {
        let idle = {
            let mut st = self.lock();
            if st.epoch != epoch {
                return;
            }
            st.epoch += 1;
            st.slot = None;
            st.open = 0;
            st.stale_handles_dead = handles_dead;
            std::mem::take(&mut st.idle)
        };
        for s in idle {
            discard(s, handles_dead);
        }
        self.returned.notify_all();
    }

    fn give_back(&self, session: Session, epoch: u64) {
        let mut st = self.lock();
        if st.epoch == epoch {
            st.idle.push(session);
            drop(st);
        } else {
            let dead = st.stale_handles_dead;
            drop(st);
            discard(session, dead);
        }
        self.returned.notify_one();
    }

    /// (open sessions, idle sessions, epoch) for Debug.
    fn counts(&self) -> (usize, usize, u64) {
        let st = self.lock();
        (st.open, st.idle.len(), st.epoch)
    }
}

/// Closes a session, or forgets it when its handle is known to be dead: closing a dead handle is at
/// best an error and at worst closes an unrelated session that reused the number.
fn discard(session: Session, handle_dead: bool) {
    if handle_dead {
        std::mem::forget(session);
    } else {
        drop(session);
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (open, idle, epoch) = self.counts();
        f.debug_struct("Pool")
            .field("module", &self.module)
            .field("token", &self.label)
            .field("size", &self.size)
            .field("open", &open)
            .field("idle", &idle)
            .field("reconnects", &epoch)
            .finish_non_exhaustive()
    }
}

impl Lease<'_> {
    /// Maps a failure of a call made on this session; when it means the connection is lost, the
    /// pool starts a new epoch and this session is dropped instead of going back.
    pub(crate) fn fail(self, err: CkError, subject: &str) -> Error {
        let dead = matches!(
            err,
            CkError::Pkcs11(
                RvError::SessionHandleInvalid | RvError::SessionClosed | RvError::CryptokiNotInitialized,
                _
            )
        );
        // Private objects vanish and private operations fail when the token logged the process out
        // (a token reset, a C_Logout elsewhere in the process): that is a lost login, not a missing key
        // or a refusal, and a new session logs in again.
        let maybe_logged_out = matches!(
            err,
            CkError::Pkcs11(
                RvError::UserNotLoggedIn | RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid,
                _
            )
        );
        if maybe_logged_out && self.logged_out() {
            return self.lost_login(subject);
        }
        let mapped = map_err(err, subject);
        if is_connection_lost(&mapped) {
            self.pool.reset(self.epoch, dead);
        }
        mapped
    }

    /// Whether the token shows this session (so the whole process) logged out.
    pub(crate) fn logged_out(&self) -> bool {
        matches!(
            self.get_session_info().map(|i| i.session_state()),
            Ok(SessionState::RoPublic | SessionState::RwPublic)
        )
    }

    /// Reports a lost login as a retryable failure and makes the pool reconnect (and log in again).
    pub(crate) fn lost_login(self, subject: &str) -> Error {
        self.pool.reset(self.epoch, false);
        Error::Unavailable {
            message: format!(
                "token {:?} logged this process out while working on {subject}; the next call logs in again",
                self.pool.label
            ),
            retryable: true,
            source: None,
        }
    }

    /// The epoch this session belongs to.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch
    }
}

impl Deref for Lease<'_> {
    type Target = Session;

    #[allow(clippy::expect_used)]
    fn deref(&self) -> &Session {
        // `session` is only taken in Drop.
        self.session
            .as_ref()
            .expect("a lease holds its session until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(s) = self.session.take() {
            self.pool.give_back(s, self.epoch);
        }
    }
}
