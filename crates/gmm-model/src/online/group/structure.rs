//! The group's structure: which component each index means, agreed through the log.
//!
//! Statistics of component k must mean the same k on every member. The structure
//! changes rarely (the initial model, a re-seeded component, the refit after an abrupt
//! change, variational births, retirements and merges), by one member at a time: a
//! member proposes epoch e + 1 built on epoch e, and the first such proposal in the
//! state topic's log wins (a member whose proposal lost drops it). Each epoch says how
//! statistics computed under earlier epochs map to its own slots ([`SlotMap`]), so a
//! partition's statistics published before a change are brought to it by whoever reads
//! them; and it carries the statistics the change itself brings (seeds, the points a
//! refit was fitted on), which decay like the rest.

use nalgebra::DVector;

use super::partition::PartitionState;
use crate::covariance::CovarianceType;
use crate::error::{ModelError, Result};
use crate::mixture::GaussianMixture;
use crate::mstep::Prior;
use crate::stats::{ComponentScatter, Scatter, SufficientStats};
use crate::variational::VariationalPrior;

/// How many earlier epochs a structure keeps maps from: statistics older than that
/// (a partition nobody has published for through that many changes) restart empty.
pub const MAX_ANCESTORS: usize = 64;

/// Where each slot of an earlier epoch goes: `map[j] = Some(i)` moves old component j
/// into slot i (merged with whatever else goes there), None drops it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlotMap(pub Vec<Option<usize>>);

impl SlotMap {
    pub fn identity(k: usize) -> Self {
        Self((0..k).map(Some).collect())
    }

    /// Every slot dropped: a fresh start.
    pub fn reset(k: usize) -> Self {
        Self(vec![None; k])
    }

    /// The identity with `slots` dropped.
    pub fn dropping(k: usize, slots: &[usize]) -> Self {
        let mut map = Self::identity(k);
        for &s in slots {
            if let Some(m) = map.0.get_mut(s) {
                *m = None;
            }
        }
        map
    }

    pub fn is_identity(&self) -> bool {
        self.0.iter().enumerate().all(|(j, m)| *m == Some(j))
    }

    /// This map, then `next`.
    pub fn then(&self, next: &SlotMap) -> SlotMap {
        SlotMap(
            self.0
                .iter()
                .map(|m| m.and_then(|i| next.0.get(i).copied().flatten()))
                .collect(),
        )
    }

    /// `stats` with their components moved as the map says (Chan's merge where
    /// several land in one slot). Tied statistics keep their pooled scatter unless
    /// every slot is dropped, as re-seeding and retiring keep it in one estimator.
    pub fn apply(&self, stats: &SufficientStats) -> Result<SufficientStats> {
        let (k, d, t) = (
            stats.n_components(),
            stats.n_features(),
            stats.covariance_type(),
        );
        if self.0.len() != k || self.0.iter().flatten().any(|&i| i >= k) {
            return Err(ModelError::IncompatibleStats(format!(
                "a slot map for {} components applied to {k}",
                self.0.len()
            )));
        }
        if self.is_identity() {
            return Ok(stats.clone());
        }
        if self.0.iter().all(Option::is_none) {
            return Ok(SufficientStats::new(t, k, d));
        }
        let mut out = match stats.scatter() {
            Scatter::Tied(pooled) => SufficientStats::from_parts(
                DVector::zeros(k),
                nalgebra::DMatrix::zeros(d, k),
                Scatter::Tied(pooled.clone()),
            )?,
            _ => SufficientStats::new(t, k, d),
        };
        for (j, target) in self.0.iter().enumerate() {
            let Some(i) = *target else { continue };
            let mean = stats.means().column(j).into_owned();
            let part = match stats.scatter() {
                Scatter::Full(m) => ComponentScatter::Full(&m[j]),
                Scatter::Diag(m) => ComponentScatter::Diag(m.column(j).into_owned()),
                Scatter::Spherical(v) => ComponentScatter::Spherical(v[j]),
                Scatter::Tied(_) => ComponentScatter::PooledElsewhere,
            };
            out.merge_component(i, stats.weights()[j], &mean, part);
        }
        Ok(out)
    }
}

/// Who proposed a structure: unique per proposal.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StructureId {
    pub proposer: String,
    pub seq: u64,
}

/// What an epoch changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StructureChange {
    /// The group's first model, fitted on the members' warm-up samples.
    Initial,
    /// Components whose weight withered, re-seeded at badly explained points.
    Reseeded { slots: Vec<usize> },
    /// An abrupt change was detected: the members collect their points from here on
    /// for a refit.
    Recovery,
    /// The refit on the points collected since the change replaced the model.
    Rebuilt,
    /// The refit did not explain the collected points better: the model stays.
    RecoveryEnded,
    /// Variational inference: components born in free slots, retired, merged
    /// ((kept, absorbed) slots).
    Variational {
        born: Vec<usize>,
        retired: Vec<usize>,
        merged: Vec<(usize, usize)>,
    },
}

impl StructureChange {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Initial => "initial",
            Self::Reseeded { .. } => "reseeded",
            Self::Recovery => "recovery",
            Self::Rebuilt => "rebuilt",
            Self::RecoveryEnded => "recovery_ended",
            Self::Variational { .. } => "variational",
        }
    }
}

/// The map from an earlier epoch's slots to this one's.
#[derive(Clone, Debug, PartialEq)]
pub struct Ancestor {
    pub epoch: u64,
    pub id: StructureId,
    pub map: SlotMap,
}

/// Statistics an epoch brings besides the partitions', kept at a clock reading.
#[derive(Clone, Debug, PartialEq)]
pub struct Carried {
    pub clock: f64,
    pub stats: SufficientStats,
}

/// The members' samples a fit was made on: member → points of its sample used (each
/// member's sample is the start of its buffer, so it absorbs the rest itself).
#[derive(Clone, Debug, PartialEq)]
pub struct Used {
    /// The collection: 0 for the warm-up, else the epoch whose change started it.
    pub purpose: u64,
    pub samples: Vec<(String, u64)>,
}

impl Used {
    pub fn points_of(&self, member: &str) -> u64 {
        self.samples
            .iter()
            .find(|(m, _)| m == member)
            .map_or(0, |(_, n)| *n)
    }
}

/// What only variational inference shares: its priors and which slots live.
#[derive(Clone, Debug, PartialEq)]
pub struct GroupVariational {
    pub prior: VariationalPrior,
    pub alive: Vec<bool>,
}

/// One epoch of the group's structure.
#[derive(Clone, Debug, PartialEq)]
pub struct Structure {
    pub epoch: u64,
    pub id: StructureId,
    /// The epoch this one is built on (None for the first).
    pub parent: Option<StructureId>,
    pub change: StructureChange,
    /// Maps from earlier epochs (the parent first), at most [`MAX_ANCESTORS`].
    pub ancestors: Vec<Ancestor>,
    pub carried: Carried,
    /// The model when the epoch began: what a member starts from, and the parameters
    /// of a component without weight.
    pub model: GaussianMixture,
    /// The MAP prior (EM with `map_prior`).
    pub prior: Option<Prior>,
    pub variational: Option<GroupVariational>,
    /// While a refit is being prepared: the epoch whose change started collecting.
    pub collecting: Option<u64>,
    /// For the initial fit and a refit: the samples used.
    pub used: Option<Used>,
    /// Buffered points absorbed when the epoch is adopted leave out those scored
    /// below this, as the fit's own statistics did (the warm-up's trimming).
    pub trim_below: Option<f64>,
}

impl Structure {
    /// The map from `epoch`'s slots to this epoch's, if kept.
    pub fn map_from(&self, epoch: u64) -> Option<SlotMap> {
        if epoch == self.epoch {
            return Some(SlotMap::identity(self.model.n_components()));
        }
        self.ancestors
            .iter()
            .find(|a| a.epoch == epoch)
            .map(|a| a.map.clone())
    }

    /// Whether this structure is built, directly or not, on `id`.
    pub fn descends_from(&self, id: &StructureId) -> bool {
        self.ancestors.iter().any(|a| &a.id == id)
    }

    /// The ancestors of an epoch built on this one by `map`.
    /// The next epoch built on this one by `change`, its slots mapped by `map`:
    /// carried statistics, prior, variational state and collection kept, nothing
    /// used, no trimming; the proposer sets the id (`submit_new`).
    pub fn successor(
        &self,
        change: StructureChange,
        map: &SlotMap,
        model: GaussianMixture,
    ) -> Structure {
        Structure {
            epoch: self.epoch + 1,
            id: StructureId {
                proposer: String::new(),
                seq: 0,
            },
            parent: Some(self.id.clone()),
            change,
            ancestors: self.ancestors_after(map),
            carried: self.carried.clone(),
            model,
            prior: self.prior.clone(),
            variational: self.variational.clone(),
            collecting: self.collecting,
            used: None,
            trim_below: None,
        }
    }

    pub fn ancestors_after(&self, map: &SlotMap) -> Vec<Ancestor> {
        let mut out = vec![Ancestor {
            epoch: self.epoch,
            id: self.id.clone(),
            map: map.clone(),
        }];
        out.extend(self.ancestors.iter().map(|a| Ancestor {
            epoch: a.epoch,
            id: a.id.clone(),
            map: a.map.then(map),
        }));
        out.truncate(MAX_ANCESTORS);
        out
    }

    /// Brings a partition's state to this epoch; false when its epoch is too old to
    /// map (its statistics are then dropped, its counts and position kept).
    pub fn adopt_state(&self, state: &mut PartitionState) -> Result<bool> {
        if state.epoch == self.epoch {
            return Ok(true);
        }
        let mapped = match self.map_from(state.epoch) {
            Some(map) => {
                state.stats = map.apply(&state.stats)?;
                true
            }
            None => {
                state.stats = SufficientStats::new(
                    state.stats.covariance_type(),
                    state.stats.n_components(),
                    state.stats.n_features(),
                );
                false
            }
        };
        state.epoch = self.epoch;
        Ok(mapped)
    }

    /// Refuses a structure that does not fit the shape (covariance type, K, d).
    pub fn check(&self, covariance_type: CovarianceType, k: usize, d: usize) -> Result<()> {
        let m = &self.model;
        let shape_ok = m.covariance_type() == covariance_type
            && m.n_components() == k
            && m.n_features() == d
            && self.carried.stats.covariance_type() == covariance_type
            && self.carried.stats.n_components() == k
            && self.carried.stats.n_features() == d
            && self
                .ancestors
                .iter()
                .all(|a| a.map.0.len() == k && a.map.0.iter().flatten().all(|&i| i < k))
            && self
                .variational
                .as_ref()
                .is_none_or(|v| v.alive.len() == k && v.prior.mean.len() == d);
        if !shape_ok {
            return Err(ModelError::IncompatibleStats(format!(
                "the structure (epoch {}) is not for {covariance_type} K = {k}, d = {d}",
                self.epoch
            )));
        }
        if let Some(p) = &self.prior {
            p.check(d)?;
        }
        if !self.carried.clock.is_finite() {
            return Err(ModelError::NonFinite {
                what: "the structure's clock".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DMatrix;

    fn stats_of(weights: &[f64]) -> SufficientStats {
        let k = weights.len();
        let means = DMatrix::from_fn(2, k, |i, j| (i + 2 * j) as f64);
        let scatter = Scatter::Full(
            (0..k)
                .map(|j| DMatrix::identity(2, 2) * weights[j] * (j + 1) as f64)
                .collect(),
        );
        SufficientStats::from_parts(DVector::from_column_slice(weights), means, scatter)
            .expect("stats")
    }

    #[test]
    fn maps_compose_as_applying_one_then_the_other() {
        let a = SlotMap(vec![Some(1), None, Some(2)]);
        let b = SlotMap(vec![Some(0), Some(0), None]);
        assert_eq!(a.then(&b), SlotMap(vec![Some(0), None, None]));
        let s = stats_of(&[1.0, 2.0, 3.0]);
        let stepwise = b.apply(&a.apply(&s).expect("a")).expect("b");
        let at_once = a.then(&b).apply(&s).expect("ab");
        assert_eq!(stepwise, at_once);
        assert!(SlotMap::identity(3).is_identity());
        assert!(!SlotMap::dropping(3, &[1]).is_identity());
    }

    #[test]
    fn a_merge_map_is_chans_merge_and_a_drop_empties_the_slot() {
        let s = stats_of(&[1.0, 3.0, 2.0]);
        let merged = SlotMap(vec![Some(1), Some(1), Some(2)])
            .apply(&s)
            .expect("merge");
        let mut expected = stats_of(&[0.0, 3.0, 2.0]);
        expected.merge_component(
            1,
            1.0,
            &s.means().column(0).into_owned(),
            ComponentScatter::Full(&(DMatrix::identity(2, 2))),
        );
        assert_eq!(merged.weights(), expected.weights());
        // The emptied slot's mean means nothing (weight 0): compare the others.
        let kept = |m: &SufficientStats| m.means().columns(1, 2).into_owned();
        assert!((kept(&merged) - kept(&expected)).norm() < 1e-15);
        assert_eq!(merged.weights()[0], 0.0);
        let reset = SlotMap::reset(3).apply(&s).expect("reset");
        assert_eq!(reset.total_weight(), 0.0);
        assert!(SlotMap(vec![Some(3), None, None]).apply(&s).is_err());
    }
}
