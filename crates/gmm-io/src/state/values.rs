//! The numbers of the state records: statistics, mixtures, priors, the structure,
//! partition states and samples, laid out by the record's shape (K, d, covariance
//! type), which says how many numbers follow, so that none carries a length of its own
//! a record could lie about.

use nalgebra::{DMatrix, DVector};

use gmm_model::group::{
    Ancestor, Carried, GroupVariational, PartitionKey, PartitionState, Sample, SlotMap, Structure,
    StructureChange, StructureId, Used,
};
use gmm_model::{
    CovariancePrior, CovarianceType, Covariances, GaussianMixture, Prior, Scatter, SufficientStats,
    VariationalPrior, WeightPriorType,
};

use super::wire::{malformed, Reader, Writer};
use super::{Shape, StateRecordError};

type Read<T> = Result<T, StateRecordError>;

fn matrix(r: &mut Reader<'_>, rows: usize, cols: usize) -> Read<DMatrix<f64>> {
    let n = rows
        .checked_mul(cols)
        .ok_or_else(|| malformed("a matrix too large".into()))?;
    Ok(DMatrix::from_vec(rows, cols, r.f64s(n)?))
}

pub(super) fn write_stats(w: &mut Writer, s: &SufficientStats) {
    w.f64s(s.weights().iter());
    w.f64s(s.means().iter());
    match s.scatter() {
        Scatter::Full(m) => m.iter().for_each(|c| w.f64s(c.iter())),
        Scatter::Diag(m) | Scatter::Tied(m) => w.f64s(m.iter()),
        Scatter::Spherical(v) => w.f64s(v.iter()),
    }
}

pub(super) fn read_stats(r: &mut Reader<'_>, shape: &Shape) -> Read<SufficientStats> {
    let (k, d) = (shape.n_components, shape.n_features);
    // Every component has at least a weight and a mean: a shape too large for the
    // record is refused before anything is allocated for it.
    if d == 0 || k.saturating_mul(d.saturating_add(1)).saturating_mul(8) > r.remaining() {
        return Err(malformed(format!(
            "K = {k}, d = {d} do not fit in the record"
        )));
    }
    let weights = DVector::from_vec(r.f64s(k)?);
    let means = matrix(r, d, k)?;
    let scatter = match shape.covariance_type {
        CovarianceType::Full => {
            Scatter::Full((0..k).map(|_| matrix(r, d, d)).collect::<Read<_>>()?)
        }
        CovarianceType::Diag => Scatter::Diag(matrix(r, d, k)?),
        CovarianceType::Spherical => Scatter::Spherical(DVector::from_vec(r.f64s(k)?)),
        CovarianceType::Tied => Scatter::Tied(matrix(r, d, d)?),
    };
    Ok(SufficientStats::from_parts(weights, means, scatter)?)
}

fn write_mixture(w: &mut Writer, m: &GaussianMixture) {
    w.f64s(m.weights().iter());
    w.f64s(m.means().iter());
    match m.covariances() {
        Covariances::Full(c) => c.iter().for_each(|c| w.f64s(c.iter())),
        Covariances::Diag(c) | Covariances::Tied(c) => w.f64s(c.iter()),
        Covariances::Spherical(v) => w.f64s(v.iter()),
    }
}

fn read_mixture(r: &mut Reader<'_>, shape: &Shape) -> Read<GaussianMixture> {
    let (k, d) = (shape.n_components, shape.n_features);
    let weights = DVector::from_vec(r.f64s(k)?);
    let means = matrix(r, d, k)?;
    let covariances = match shape.covariance_type {
        CovarianceType::Full => {
            Covariances::Full((0..k).map(|_| matrix(r, d, d)).collect::<Read<_>>()?)
        }
        CovarianceType::Diag => Covariances::Diag(matrix(r, d, k)?),
        CovarianceType::Spherical => Covariances::Spherical(DVector::from_vec(r.f64s(k)?)),
        CovarianceType::Tied => Covariances::Tied(matrix(r, d, d)?),
    };
    Ok(GaussianMixture::new(weights, means, covariances)?)
}

fn write_prior(w: &mut Writer, p: &Prior) {
    w.f64(p.weight_concentration);
    w.f64s(p.mean.iter());
    w.f64(p.mean_precision);
    w.f64(p.dof);
    w.f64s(p.scale.iter());
}

fn read_prior(r: &mut Reader<'_>, shape: &Shape) -> Read<Prior> {
    let d = shape.n_features;
    let prior = Prior {
        weight_concentration: r.f64()?,
        mean: DVector::from_vec(r.f64s(d)?),
        mean_precision: r.f64()?,
        dof: r.f64()?,
        scale: matrix(r, d, d)?,
    };
    prior.check(d)?;
    Ok(prior)
}

fn write_variational(w: &mut Writer, v: &GroupVariational) {
    let p = &v.prior;
    w.u8(match p.weight_concentration_prior_type {
        WeightPriorType::DirichletProcess => 0,
        WeightPriorType::DirichletDistribution => 1,
    });
    w.f64(p.weight_concentration);
    w.f64(p.mean_precision);
    w.f64s(p.mean.iter());
    w.f64(p.degrees_of_freedom);
    match &p.covariance {
        CovariancePrior::Matrix(m) => {
            w.u8(0);
            w.f64s(m.iter());
        }
        CovariancePrior::Diagonal(v) => {
            w.u8(1);
            w.f64s(v.iter());
        }
        CovariancePrior::Scalar(s) => {
            w.u8(2);
            w.f64(*s);
        }
    }
    v.alive.iter().for_each(|&a| w.bool(a));
}

fn read_variational(r: &mut Reader<'_>, shape: &Shape) -> Read<GroupVariational> {
    let d = shape.n_features;
    let weight_concentration_prior_type = match r.u8()? {
        0 => WeightPriorType::DirichletProcess,
        1 => WeightPriorType::DirichletDistribution,
        t => return Err(malformed(format!("{t} is not a weight prior type"))),
    };
    let weight_concentration = r.f64()?;
    let mean_precision = r.f64()?;
    let mean = DVector::from_vec(r.f64s(d)?);
    let degrees_of_freedom = r.f64()?;
    let covariance = match r.u8()? {
        0 => CovariancePrior::Matrix(matrix(r, d, d)?),
        1 => CovariancePrior::Diagonal(DVector::from_vec(r.f64s(d)?)),
        2 => CovariancePrior::Scalar(r.f64()?),
        t => return Err(malformed(format!("{t} is not a covariance prior layout"))),
    };
    let prior = VariationalPrior {
        weight_concentration_prior_type,
        weight_concentration,
        mean_precision,
        mean,
        degrees_of_freedom,
        covariance,
    };
    prior.check(shape.covariance_type, d)?;
    let alive = (0..shape.n_components)
        .map(|_| r.bool())
        .collect::<Read<_>>()?;
    Ok(GroupVariational { prior, alive })
}

fn write_id(w: &mut Writer, id: &StructureId) {
    w.str(&id.proposer);
    w.u64(id.seq);
}

fn read_id(r: &mut Reader<'_>) -> Read<StructureId> {
    Ok(StructureId {
        proposer: r.str()?,
        seq: r.u64()?,
    })
}

fn write_slots(w: &mut Writer, slots: &[usize]) {
    w.u32(slots.len() as u32);
    slots.iter().for_each(|&s| w.u32(s as u32));
}

fn read_slots(r: &mut Reader<'_>, k: usize) -> Read<Vec<usize>> {
    let n = r.count(4)?;
    (0..n)
        .map(|_| {
            let s = r.u32()? as usize;
            if s < k {
                Ok(s)
            } else {
                Err(malformed(format!("slot {s} of {k}")))
            }
        })
        .collect()
}

fn write_change(w: &mut Writer, c: &StructureChange) {
    match c {
        StructureChange::Initial => w.u8(0),
        StructureChange::Reseeded { slots } => {
            w.u8(1);
            write_slots(w, slots);
        }
        StructureChange::Recovery => w.u8(2),
        StructureChange::Rebuilt => w.u8(3),
        StructureChange::RecoveryEnded => w.u8(4),
        StructureChange::Variational {
            born,
            retired,
            merged,
        } => {
            w.u8(5);
            write_slots(w, born);
            write_slots(w, retired);
            let flat: Vec<usize> = merged.iter().flat_map(|&(a, b)| [a, b]).collect();
            write_slots(w, &flat);
        }
    }
}

fn read_change(r: &mut Reader<'_>, k: usize) -> Read<StructureChange> {
    Ok(match r.u8()? {
        0 => StructureChange::Initial,
        1 => StructureChange::Reseeded {
            slots: read_slots(r, k)?,
        },
        2 => StructureChange::Recovery,
        3 => StructureChange::Rebuilt,
        4 => StructureChange::RecoveryEnded,
        5 => {
            let born = read_slots(r, k)?;
            let retired = read_slots(r, k)?;
            let flat = read_slots(r, k)?;
            if flat.len() % 2 != 0 {
                return Err(malformed("an odd number of merged slots".into()));
            }
            let merged = flat.chunks_exact(2).map(|p| (p[0], p[1])).collect();
            StructureChange::Variational {
                born,
                retired,
                merged,
            }
        }
        t => return Err(malformed(format!("{t} is not a structure change"))),
    })
}

fn write_map(w: &mut Writer, map: &SlotMap) {
    for m in &map.0 {
        w.i32(m.map_or(-1, |i| i as i32));
    }
}

fn read_map(r: &mut Reader<'_>, k: usize) -> Read<SlotMap> {
    let map = (0..k)
        .map(|_| match r.i32()? {
            -1 => Ok(None),
            i if (0..k as i32).contains(&i) => Ok(Some(i as usize)),
            i => Err(malformed(format!("slot {i} of {k} in a slot map"))),
        })
        .collect::<Read<_>>()?;
    Ok(SlotMap(map))
}

pub(super) fn write_structure(w: &mut Writer, s: &Structure) {
    w.u64(s.epoch);
    write_id(w, &s.id);
    w.option(s.parent.as_ref(), write_id);
    write_change(w, &s.change);
    w.u32(s.ancestors.len() as u32);
    for a in &s.ancestors {
        w.u64(a.epoch);
        write_id(w, &a.id);
        write_map(w, &a.map);
    }
    w.f64(s.carried.clock);
    write_stats(w, &s.carried.stats);
    write_mixture(w, &s.model);
    w.option(s.prior.as_ref(), write_prior);
    w.option(s.variational.as_ref(), write_variational);
    w.option(s.collecting.as_ref(), |w, p| w.u64(*p));
    w.option(s.used.as_ref(), |w, u| {
        w.u64(u.purpose);
        w.u32(u.samples.len() as u32);
        for (member, n) in &u.samples {
            w.str(member);
            w.u64(*n);
        }
    });
    w.option(s.trim_below.as_ref(), |w, t| w.f64(*t));
}

pub(super) fn read_structure(r: &mut Reader<'_>, shape: &Shape) -> Read<Structure> {
    let k = shape.n_components;
    let epoch = r.u64()?;
    let id = read_id(r)?;
    let parent = r.option(read_id)?;
    let change = read_change(r, k)?;
    let n = r.count(8 + 4 + 8 + 4 * k)?;
    let ancestors = (0..n)
        .map(|_| {
            Ok(Ancestor {
                epoch: r.u64()?,
                id: read_id(r)?,
                map: read_map(r, k)?,
            })
        })
        .collect::<Read<_>>()?;
    let carried = Carried {
        clock: r.f64()?,
        stats: read_stats(r, shape)?,
    };
    let model = read_mixture(r, shape)?;
    let prior = r.option(|r| read_prior(r, shape))?;
    let variational = r.option(|r| read_variational(r, shape))?;
    let collecting = r.option(Reader::u64)?;
    let used = r.option(|r| {
        let purpose = r.u64()?;
        let n = r.count(4 + 8)?;
        let samples = (0..n)
            .map(|_| Ok((r.str()?, r.u64()?)))
            .collect::<Read<_>>()?;
        Ok(Used { purpose, samples })
    })?;
    let trim_below = r.option(Reader::f64)?;
    let s = Structure {
        epoch,
        id,
        parent,
        change,
        ancestors,
        carried,
        model,
        prior,
        variational,
        collecting,
        used,
        trim_below,
    };
    s.check(shape.covariance_type, k, shape.n_features)?;
    Ok(s)
}

pub(super) fn write_partition(w: &mut Writer, s: &PartitionState) {
    w.str(&s.key.topic);
    w.i32(s.key.partition);
    w.u64(s.epoch);
    w.i64(s.next_offset);
    w.u64(s.points);
    w.f64(s.batches);
    w.f64(s.clock);
    write_stats(w, &s.stats);
}

pub(super) fn read_partition(r: &mut Reader<'_>, shape: &Shape) -> Read<PartitionState> {
    let key = PartitionKey {
        topic: r.str()?,
        partition: r.i32()?,
    };
    let state = PartitionState {
        key,
        epoch: r.u64()?,
        next_offset: r.i64()?,
        points: r.u64()?,
        batches: r.f64()?,
        clock: r.f64()?,
        stats: read_stats(r, shape)?,
    };
    if !(state.batches.is_finite() && state.batches >= 0.0 && state.clock.is_finite()) {
        return Err(malformed(format!(
            "the clock of partition {} is not a finite reading",
            state.key
        )));
    }
    Ok(state)
}

pub(super) fn write_sample(w: &mut Writer, s: &Sample) {
    w.str(&s.member);
    w.u64(s.purpose);
    w.u64(s.len() as u64);
    w.f64s(s.points.iter());
}

pub(super) fn read_sample(r: &mut Reader<'_>, shape: &Shape) -> Read<Sample> {
    if shape.n_features == 0 {
        return Err(malformed("a sample of points without coordinates".into()));
    }
    let member = r.str()?;
    let purpose = r.u64()?;
    let n = usize::try_from(r.u64()?).map_err(|_| malformed("too many points".into()))?;
    let values = n
        .checked_mul(shape.n_features)
        .ok_or_else(|| malformed("too many points".into()))?;
    let points = r.f64s(values)?;
    if !points.iter().all(|v| v.is_finite()) {
        return Err(malformed("a sample holds a non-finite coordinate".into()));
    }
    Ok(Sample {
        member,
        purpose,
        n_features: shape.n_features,
        points,
    })
}
