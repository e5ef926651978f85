//! The rotation scheduler: a tokio task that calls [`Rotator::run_due`] on an interval.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::{Rotator, RunReport};
use crate::clock::Clock;
use crate::error::Result;

type ReportFn = Arc<dyn Fn(Result<RunReport>) + Send + Sync>;

/// Builds a [`Scheduler`] (feature `scheduler`).
pub struct SchedulerBuilder {
    rotator: Arc<dyn Rotator>,
    clock: Arc<dyn Clock>,
    interval: Duration,
    on_report: Option<ReportFn>,
}

impl fmt::Debug for SchedulerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SchedulerBuilder")
            .field("rotator", &self.rotator)
            .field("clock", &self.clock)
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl SchedulerBuilder {
    /// How often due work is looked for (default: one minute; at least one millisecond).
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Called with the outcome of every run (for logging or metrics). Runs on the scheduler task: keep
    /// it short.
    #[must_use]
    pub fn on_report(mut self, f: impl Fn(Result<RunReport>) + Send + Sync + 'static) -> Self {
        self.on_report = Some(Arc::new(f));
        self
    }

    /// Spawns the task on the current tokio runtime. The first run happens one interval from now.
    ///
    /// # Panics
    /// When called outside a tokio runtime (as `tokio::spawn` does).
    pub fn spawn(self) -> Scheduler {
        let stop = Arc::new(Notify::new());
        let wake = Arc::new(Notify::new());
        let (rotator, clock) = (self.rotator.clone(), self.clock.clone());
        let (stop2, wake2) = (stop.clone(), wake.clone());
        let interval = self.interval;
        let on_report = self.on_report.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    () = stop2.notified() => return,
                    () = tokio::time::sleep(interval) => {}
                    () = wake2.notified() => {}
                }
                let report = rotator.run_due(clock.now()).await;
                if let Some(f) = &on_report {
                    f(report);
                }
            }
        });
        Scheduler {
            rotator: self.rotator,
            clock: self.clock,
            stop,
            wake,
            task: Some(task),
        }
    }
}

/// A tokio task performing due rotations and purges on an interval (feature `scheduler`).
///
/// Time comes from the injected [`Clock`], so tests drive it with a
/// [`ManualClock`](crate::ManualClock) (and tokio's paused time for the interval). Dropping the
/// scheduler stops the task.
pub struct Scheduler {
    rotator: Arc<dyn Rotator>,
    clock: Arc<dyn Clock>,
    stop: Arc<Notify>,
    wake: Arc<Notify>,
    task: Option<JoinHandle<()>>,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("rotator", &self.rotator)
            .field("clock", &self.clock)
            .field("running", &self.task.as_ref().is_some_and(|t| !t.is_finished()))
            .finish()
    }
}

impl Scheduler {
    /// A builder for a scheduler over `rotator`, reading time from `clock`.
    pub fn builder(rotator: Arc<dyn Rotator>, clock: Arc<dyn Clock>) -> SchedulerBuilder {
        SchedulerBuilder {
            rotator,
            clock,
            interval: Duration::from_secs(60),
            on_report: None,
        }
    }

    /// Makes the task run now instead of at its next tick (its report goes to `on_report`).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Runs due work once, here, as of the clock's now (independent of the task).
    ///
    /// # Errors
    /// As [`Rotator::run_due`].
    pub async fn run_now(&self) -> Result<RunReport> {
        self.rotator.run_due(self.clock.now()).await
    }

    /// Stops the task and waits for it: a run in progress completes first.
    pub async fn shutdown(mut self) {
        self.stop.notify_one();
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.stop.notify_one();
    }
}
