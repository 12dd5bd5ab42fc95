//! One dissemination round of a namespace's tables, as placement runs it:
//! `lock` to every runtime of the namespace, then `update` with the
//! tables, then `unlock`, each phase sent only once every runtime has
//! acknowledged the one before (so no two runtimes ever route by tables
//! of different versions while unlocked). A runtime that does not
//! acknowledge within the timeout of a phase is named by [`Round::laggards`]
//! so the service can drop it: the round never wedges, and the membership
//! change that dropping makes starts the next round. A runtime that goes
//! away during a round no longer holds it up.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// A phase of a round (`PlacementOrder.operation`, acknowledged with the
/// matching `HostOperation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Lock,
    Update,
    Unlock,
}

impl Phase {
    /// The operation's name in a `PlacementOrder`.
    pub fn operation(self) -> &'static str {
        match self {
            Self::Lock => "lock",
            Self::Update => "update",
            Self::Unlock => "unlock",
        }
    }

    /// The phase a `PlacementOrder.operation` names.
    pub fn of_operation(operation: &str) -> Option<Self> {
        [Self::Lock, Self::Update, Self::Unlock]
            .into_iter()
            .find(|phase| phase.operation() == operation)
    }

    fn next(self) -> Option<Self> {
        match self {
            Self::Lock => Some(Self::Update),
            Self::Update => Some(Self::Unlock),
            Self::Unlock => None,
        }
    }
}

/// What a round asks for after an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress<S> {
    /// Some runtimes have yet to acknowledge the phase.
    Waiting,
    /// Send `phase` to these runtimes (every runtime of the round).
    Send(Phase, Vec<S>),
    /// Every runtime acknowledged `unlock`: the round is over.
    Done,
    /// An acknowledgement of another version or phase, or from a runtime
    /// outside the round: nothing changes.
    Ignored,
}

/// One round of table `version` among runtimes known by their stream `S`.
#[derive(Debug)]
pub struct Round<S> {
    version: u64,
    phase: Phase,
    members: BTreeSet<S>,
    waiting: BTreeSet<S>,
    timeout: Duration,
    deadline: Instant,
}

impl<S: Ord + Clone> Round<S> {
    /// Starts the round: `lock` goes to every member (none: the round is
    /// over at once).
    pub fn start(
        version: u64,
        members: impl IntoIterator<Item = S>,
        now: Instant,
        timeout: Duration,
    ) -> (Self, Progress<S>) {
        let members: BTreeSet<S> = members.into_iter().collect();
        let round = Self {
            version,
            phase: Phase::Lock,
            waiting: members.clone(),
            members,
            timeout,
            deadline: now + timeout,
        };
        let progress = if round.members.is_empty() {
            Progress::Done
        } else {
            Progress::Send(Phase::Lock, round.members.iter().cloned().collect())
        };
        (round, progress)
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// `from` acknowledged `phase` of `version`.
    pub fn ack(&mut self, from: &S, phase: Phase, version: u64, now: Instant) -> Progress<S> {
        if version != self.version || phase != self.phase || !self.waiting.remove(from) {
            return Progress::Ignored;
        }
        self.advance(now)
    }

    /// `member`'s stream ended: the round goes on without it.
    pub fn gone(&mut self, member: &S, now: Instant) -> Progress<S> {
        if !self.members.remove(member) {
            return Progress::Ignored;
        }
        self.waiting.remove(member);
        self.advance(now)
    }

    fn advance(&mut self, now: Instant) -> Progress<S> {
        if !self.waiting.is_empty() {
            return Progress::Waiting;
        }
        match self.phase.next() {
            Some(next) if !self.members.is_empty() => {
                self.phase = next;
                self.waiting = self.members.clone();
                self.deadline = now + self.timeout;
                Progress::Send(next, self.members.iter().cloned().collect())
            }
            _ => Progress::Done,
        }
    }

    /// The runtimes that have not acknowledged the phase in time, once its
    /// timeout has passed at `now`: to be dropped.
    pub fn laggards(&self, now: Instant) -> Vec<S> {
        if now < self.deadline {
            return Vec::new();
        }
        self.waiting.iter().cloned().collect()
    }

    /// When the phase times out.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(8);

    #[test]
    fn phases_follow_each_other_once_all_acknowledge() {
        let t0 = Instant::now();
        let (mut round, progress) = Round::start(7, [1, 2], t0, TIMEOUT);
        assert_eq!(progress, Progress::Send(Phase::Lock, vec![1, 2]));
        assert_eq!(round.ack(&1, Phase::Lock, 7, t0), Progress::Waiting);
        // A repeated, stale or early acknowledgement changes nothing.
        assert_eq!(round.ack(&1, Phase::Lock, 7, t0), Progress::Ignored);
        assert_eq!(round.ack(&2, Phase::Lock, 6, t0), Progress::Ignored);
        assert_eq!(round.ack(&2, Phase::Update, 7, t0), Progress::Ignored);
        assert_eq!(round.ack(&3, Phase::Lock, 7, t0), Progress::Ignored);
        assert_eq!(
            round.ack(&2, Phase::Lock, 7, t0),
            Progress::Send(Phase::Update, vec![1, 2])
        );
        assert_eq!(round.phase(), Phase::Update);
        assert_eq!(round.ack(&2, Phase::Update, 7, t0), Progress::Waiting);
        assert_eq!(
            round.ack(&1, Phase::Update, 7, t0),
            Progress::Send(Phase::Unlock, vec![1, 2])
        );
        assert_eq!(round.ack(&1, Phase::Unlock, 7, t0), Progress::Waiting);
        assert_eq!(round.ack(&2, Phase::Unlock, 7, t0), Progress::Done);
        assert_eq!(round.version(), 7);
    }

    #[test]
    fn a_round_without_members_is_over() {
        let (_, progress) = Round::<u32>::start(1, [], Instant::now(), TIMEOUT);
        assert_eq!(progress, Progress::Done);
    }

    #[test]
    fn a_runtime_that_never_acknowledges_is_named_after_the_timeout() {
        let t0 = Instant::now();
        let (mut round, _) = Round::start(3, ["a", "b", "c"], t0, TIMEOUT);
        round.ack(&"a", Phase::Lock, 3, t0);
        round.ack(&"b", Phase::Lock, 3, t0);
        assert!(
            round
                .laggards(t0 + TIMEOUT - Duration::from_millis(1))
                .is_empty()
        );
        assert_eq!(round.laggards(t0 + TIMEOUT), ["c"]);
        // Dropped, it no longer holds the round up.
        assert_eq!(
            round.gone(&"c", t0 + TIMEOUT),
            Progress::Send(Phase::Update, vec!["a", "b"])
        );
        // Each phase has its own timeout.
        assert!(round.laggards(t0 + TIMEOUT).is_empty());
        assert_eq!(round.deadline(), t0 + TIMEOUT + TIMEOUT);
        assert_eq!(round.gone(&"c", t0), Progress::Ignored);
    }

    #[test]
    fn the_last_runtime_going_ends_the_round() {
        let t0 = Instant::now();
        let (mut round, _) = Round::start(1, ["a"], t0, TIMEOUT);
        assert_eq!(round.gone(&"a", t0), Progress::Done);
    }
}
