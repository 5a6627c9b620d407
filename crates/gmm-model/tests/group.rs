//! Online EM shared by a consumer group, the members simulated in memory and their
//! records passed through one ordered log (`group_sim`): the group's model against one
//! estimator reading every partition, warm-up races, late joiners, failover, abrupt
//! changes, re-seeding and variational births.

mod group_sim;

use gmm_model::group::{GroupEstimator, Incoming, Reaction, StructureChange};
use gmm_model::{
    points_from_rows, DriftSettings, HalfLifeUnit, Inference, OnlineEm, OnlineSettings, Schedule,
};
use group_sim::*;

fn settings(k: usize, warmup: usize, half_life: f64) -> OnlineSettings {
    OnlineSettings {
        warmup_points: warmup,
        schedule: Schedule::Decay {
            half_life: Some(half_life),
            unit: HalfLifeUnit::Points,
        },
        ..OnlineSettings::new(k)
    }
}

/// Members owning partitions `owned[i]`, each absorbing `per_partition` points of
/// each of its partitions per round, all reading the log after every round.
struct Run {
    members: Vec<Member>,
    owned: Vec<Vec<i32>>,
    sources: Vec<Source>,
    log: Log,
    produced: u64,
    /// Every round's points, per partition, in the order absorbed.
    rounds: Vec<Vec<(i32, Vec<f64>)>>,
}

impl Run {
    fn new(settings: &OnlineSettings, owned: Vec<Vec<i32>>, seed: u64) -> Self {
        let cs = clusters(0.0);
        let sources = cs
            .iter()
            .enumerate()
            .map(|(i, c)| Source::new(c, seed + i as u64))
            .collect();
        let members = (0..owned.len())
            .map(|i| {
                let mut m = Member::new(&format!("member-{i}"), settings.clone());
                for &p in &owned[i] {
                    m.est.assign(key(p), None).expect("assign");
                }
                m
            })
            .collect();
        Self {
            members,
            owned,
            sources,
            log: Log::default(),
            produced: 0,
            rounds: Vec::new(),
        }
    }

    fn round(&mut self, per_partition: usize) {
        let now = self.rounds.len() as f64;
        let mut all = Vec::new();
        for i in 0..self.members.len() {
            let batch: Vec<(i32, Vec<f64>)> = self.owned[i]
                .iter()
                .map(|&p| (p, self.sources[p as usize].draw(per_partition)))
                .collect();
            self.produced += (batch.len() * per_partition) as u64;
            let keyed: Vec<_> = batch.iter().map(|(p, v)| (key(*p), v.clone())).collect();
            self.members[i].absorb(&keyed, 2, now, &mut self.log);
            all.extend(batch);
        }
        self.rounds.push(all);
        self.catch_up();
    }

    fn catch_up(&mut self) {
        // Twice: what one member publishes while reading, the others read too.
        for _ in 0..2 {
            for m in &mut self.members {
                m.catch_up(&mut self.log, 0.0);
            }
        }
    }

    /// One estimator reading every partition: a batch per round, with every
    /// partition's points of the round.
    fn single(&self, settings: &OnlineSettings) -> OnlineEm {
        let mut single = OnlineEm::new(settings.clone()).expect("an estimator");
        for batch in &self.rounds {
            let values: Vec<f64> = batch.iter().flat_map(|(_, v)| v.iter().copied()).collect();
            // A round a second, as the members' clock has it.
            single
                .partial_fit(points_from_rows(&values, 2).expect("points"), 1.0)
                .expect("absorbed");
        }
        single
    }
}

fn held_out(shift: f64, per_cluster: usize) -> Vec<f64> {
    clusters(shift)
        .iter()
        .enumerate()
        .flat_map(|(i, c)| Source::new(c, 9_000 + i as u64).draw(per_cluster))
        .collect()
}

#[test]
fn a_group_of_one_is_one_estimator() {
    // No drift detection and no re-seeding: the structure never changes after the
    // warm-up, so the member's model must follow one estimator's to rounding.
    let s = OnlineSettings {
        drift: DriftSettings {
            enabled: false,
            ..DriftSettings::default()
        },
        min_weight: 0.0,
        ..settings(6, 600, 3000.0)
    };
    let mut run = Run::new(&s, vec![vec![0, 1, 2, 3, 4, 5]], 1);
    for _ in 0..40 {
        run.round(40);
    }
    let single = run.single(&s);
    let m = &run.members[0];
    assert_eq!(m.est.points_seen(), single.points_seen());
    assert_eq!(m.est.points_seen(), run.produced);
    let diff = relative_difference(m.model(), single.model().expect("a model"));
    eprintln!("relative difference from one estimator: {diff:e}");
    assert!(diff < 1e-9, "relative difference {diff}");
    assert_eq!(
        m.scored + m.warmup_scored,
        run.produced as usize,
        "every point scored once"
    );
}

/// Points too far from every component to learn from (a coordinate of 1e20, in the
/// warm-up and after it) are scored but never absorbed by a member, exactly as by one
/// estimator: a group of one reading them ends with one estimator's model.
#[test]
fn huge_points_are_kept_out_of_a_members_statistics_as_out_of_one_estimators() {
    let s = OnlineSettings {
        drift: DriftSettings {
            enabled: false,
            ..DriftSettings::default()
        },
        min_weight: 0.0,
        ..settings(3, 600, 3000.0)
    };
    let mut run = Run::new(&s, vec![vec![0, 1, 2]], 4);
    for r in 0..30 {
        run.round(40);
        // A huge point in the round's last partition every third round (the first
        // ones fall in the warm-up).
        if r % 3 == 0 {
            let last = run.rounds.len() - 1;
            let (_, values) = run.rounds[last].last_mut().expect("a partition");
            values[2] = 1e20;
        }
    }
    // Replayed into a fresh member, with the huge points in place.
    let mut member = Member::new("member-0", s.clone());
    for p in 0..3 {
        member.est.assign(key(p), None).expect("assign");
    }
    let mut log = Log::default();
    for (i, batch) in run.rounds.iter().enumerate() {
        let keyed: Vec<_> = batch.iter().map(|(p, v)| (key(*p), v.clone())).collect();
        member.absorb(&keyed, 2, i as f64, &mut log);
        member.catch_up(&mut log, 0.0);
    }
    let single = run.single(&s);
    let model = member.model();
    assert!(
        model.means().iter().all(|m| m.abs() < 100.0),
        "a huge point moved a mean: {}",
        model.means()
    );
    let diff = relative_difference(model, single.model().expect("a model"));
    eprintln!("relative difference from one estimator: {diff:e}");
    assert!(diff < 1e-9, "relative difference {diff}");
}

#[test]
fn three_members_with_a_cluster_per_partition_share_the_model_of_one_estimator() {
    let s = settings(6, 900, 6000.0);
    let mut run = Run::new(&s, vec![vec![0, 1], vec![2, 3], vec![4, 5]], 2);
    for _ in 0..80 {
        run.round(100);
    }
    run.catch_up();
    let single = run.single(&s);
    let test = held_out(0.0, 2000);
    let reference = mean_ll(single.model().expect("a model"), &test);
    let truth = mean_ll(&mixture_of(&clusters(0.0)), &test);
    let first = run.members[0].model().clone();
    for m in &run.members {
        let ll = mean_ll(m.model(), &test);
        eprintln!(
            "{}: {ll:.5} (one estimator {reference:.5}, truth {truth:.5})",
            m.name()
        );
        assert!((ll - reference).abs() < 0.02, "{ll} vs {reference}");
        assert_eq!(m.est.points_seen(), run.produced);
        assert_eq!(m.model(), &first, "a quiet group's members hold one model");
        assert_eq!(m.est.epoch(), run.members[0].est.epoch());
        assert_eq!(m.scored + m.warmup_scored, 2 * 100 * 80);
    }
    // Two members proposed an initial model at once; one of them lost and said so.
    let initial: Vec<_> = run
        .log
        .structures()
        .into_iter()
        .filter(|s| s.change == StructureChange::Initial)
        .map(|s| s.id.clone())
        .collect();
    assert!(initial.len() >= 2, "{initial:?}");
    let winner = &initial[0];
    for m in &run.members {
        let adopted = m.est.structure().expect("a structure");
        assert!(adopted.id == *winner || adopted.descends_from(winner));
    }
    let lost = run
        .members
        .iter()
        .flat_map(|m| &m.reactions)
        .filter(|r| matches!(r, Reaction::Lost { .. }))
        .count();
    assert!(lost >= 1, "the losing proposer republished the winner");

    // A member that joins now adopts the group's model from the log alone.
    let mut late = Member::new("late", s.clone());
    late.catch_up(&mut run.log, 0.0);
    assert!(!late.est.is_warming_up());
    assert_eq!(late.model(), &first);
    assert_eq!(late.est.points_seen(), run.produced);
}

#[test]
fn a_partition_taken_over_resumes_from_its_last_state_without_loss_or_repeat() {
    let s = settings(6, 900, 6000.0);
    let mut run = Run::new(&s, vec![vec![0, 1], vec![2, 3], vec![4, 5]], 3);
    for _ in 0..30 {
        run.round(100);
    }
    // Member 2 absorbs one more batch but dies before publishing it.
    let lost_batch: Vec<(i32, Vec<f64>)> = [4, 5]
        .iter()
        .map(|&p| (p, run.sources[p as usize].draw(100)))
        .collect();
    let keyed: Vec<_> = lost_batch
        .iter()
        .map(|(p, v)| (key(*p), v.clone()))
        .collect();
    let runs: Vec<gmm_model::group::Run<'_>> = keyed
        .iter()
        .map(|(k, v)| gmm_model::group::Run {
            key: k,
            points: points_from_rows(v, 2).expect("points"),
        })
        .collect();
    run.members[2]
        .est
        .absorb(&runs, &[], 0.0)
        .expect("absorbed");
    let dead = run.members.pop().expect("member 2");
    drop(dead);
    run.owned.pop();
    // Member 1 takes its partitions over from their last published states, and reads
    // the unpublished points again (their offsets were never published).
    for p in [4, 5] {
        let last = run.members[1].state(&key(p));
        run.members[1]
            .est
            .assign(key(p), Some(last))
            .expect("assign");
        run.owned[1].push(p);
    }
    let replay: Vec<_> = keyed.clone();
    run.members[1].absorb(&replay, 2, 0.0, &mut run.log);
    run.produced += 200;
    for _ in 0..20 {
        run.round(100);
    }
    run.catch_up();
    for m in &run.members {
        assert_eq!(m.est.points_seen(), run.produced, "{}", m.name());
    }
    assert_eq!(run.members[0].model(), run.members[1].model());
    let ll = mean_ll(run.members[0].model(), &held_out(0.0, 1000));
    let truth = mean_ll(&mixture_of(&clusters(0.0)), &held_out(0.0, 1000));
    assert!((ll - truth).abs() < 0.05, "{ll} vs truth {truth}");
}

#[test]
fn the_group_recovers_from_an_abrupt_change_like_one_estimator() {
    let half_life = 3000.0;
    let s = settings(6, 900, half_life);
    let mut run = Run::new(&s, vec![vec![0, 1], vec![2, 3], vec![4, 5]], 4);
    for _ in 0..30 {
        run.round(100);
    }
    // Every cluster moves: the circle turns by half the angle between clusters and
    // shifts.
    let moved = clusters(std::f64::consts::PI / 6.0);
    for (i, c) in moved.iter().enumerate() {
        let mut c = c.clone();
        c.0[0] += 6.0;
        run.sources[i] = Source::new(&c, 500 + i as u64);
    }
    // Two half-lives of the group's points.
    let rounds = (2.0 * half_life / 600.0).ceil() as usize;
    for _ in 0..rounds {
        run.round(100);
    }
    run.catch_up();
    let mut test = Vec::new();
    for (i, c) in moved.iter().enumerate() {
        let mut c = c.clone();
        c.0[0] += 6.0;
        test.extend(Source::new(&c, 7_000 + i as u64).draw(1000));
    }
    let single = run.single(&s);
    let one = mean_ll(single.model().expect("a model"), &test);
    let changes: Vec<_> = run.members[0]
        .reactions
        .iter()
        .filter_map(|r| match r {
            Reaction::Adopted(a) => Some(a.change.name()),
            _ => None,
        })
        .collect();
    let truth = mean_ll(
        &mixture_of(
            &moved
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    c.0[0] += 6.0;
                    c
                })
                .collect::<Vec<_>>(),
        ),
        &test,
    );
    eprintln!("epochs adopted: {changes:?}; one estimator {one:.4}, truth {truth:.4}");
    assert!(changes.contains(&"recovery"), "{changes:?}");
    for m in &run.members {
        let ll = mean_ll(m.model(), &test);
        eprintln!("{}: {ll:.4}", m.name());
        assert!(
            ll > one - 0.05,
            "{} recovered to {ll}, one estimator to {one}",
            m.name()
        );
        assert!(
            ll > truth - 0.05,
            "{} recovered to {ll}, truth {truth}",
            m.name()
        );
    }
}

#[test]
fn a_component_without_points_is_reseeded_through_the_log() {
    let s = settings(6, 900, 1500.0);
    let mut run = Run::new(&s, vec![vec![0, 1], vec![2, 3], vec![4, 5]], 5);
    for _ in 0..10 {
        run.round(100);
    }
    // Partition 5 goes quiet, the others carry on: its component withers.
    run.owned[2] = vec![4];
    for _ in 0..40 {
        run.round(100);
    }
    run.catch_up();
    let reseeded = run
        .log
        .structures()
        .iter()
        .any(|s| matches!(s.change, StructureChange::Reseeded { .. }));
    assert!(reseeded, "a withered component was re-seeded");
    let first = run.members[0].model().clone();
    for m in &run.members {
        assert_eq!(m.model(), &first);
        assert_eq!(m.est.points_seen(), run.produced);
    }
}

#[test]
fn variational_members_agree_on_births() {
    let s = OnlineSettings {
        inference: Inference::Variational,
        ..settings(10, 900, 3000.0)
    };
    // Partitions 4 and 5 bring two new clusters once the group runs.
    let mut run = Run::new(&s, vec![vec![0, 1], vec![2, 3], vec![]], 6);
    for _ in 0..20 {
        run.round(100);
    }
    let before = run.members[0].est.effective_components();
    for p in [4, 5] {
        run.members[2].est.assign(key(p), None).expect("assign");
        run.owned[2].push(p);
    }
    for _ in 0..40 {
        run.round(100);
    }
    run.catch_up();
    let after = run.members[0].est.effective_components();
    eprintln!("live components {before:?} -> {after:?}");
    let born = run.log.structures().iter().any(
        |s| matches!(&s.change, StructureChange::Variational { born, .. } if !born.is_empty()),
    );
    assert!(born, "a component was born");
    let first = run.members[0].model().clone();
    for m in &run.members {
        assert_eq!(m.model(), &first);
        assert_eq!(m.est.effective_components(), after);
    }
    let ll = mean_ll(&first, &held_out(0.0, 1000));
    let truth = mean_ll(&mixture_of(&clusters(0.0)), &held_out(0.0, 1000));
    assert!((ll - truth).abs() < 0.1, "{ll} vs truth {truth}");
}

#[test]
fn a_record_published_under_an_older_epoch_is_brought_to_the_current_one() {
    let s = settings(6, 900, 6000.0);
    let mut run = Run::new(&s, vec![vec![0, 1], vec![2, 3], vec![4, 5]], 7);
    for _ in 0..10 {
        run.round(100);
    }
    let old = run.members[2].state(&key(4));
    // A structure change the old record does not know of: re-seeding slot 0.
    let cur = run.members[0].est.structure().expect("a structure").clone();
    let map = gmm_model::group::SlotMap::dropping(6, &[0]);
    let mut next = cur.clone();
    next.epoch += 1;
    next.parent = Some(cur.id.clone());
    next.id.seq += 1_000_000;
    next.ancestors = cur.ancestors_after(&map);
    next.change = StructureChange::Reseeded { slots: vec![0] };
    run.log
        .entries
        .push(Incoming::Structure(Box::new(next.clone())));
    run.catch_up();
    let mut late = GroupEstimator::new(s, "late").expect("a member");
    late.receive(Incoming::Structure(Box::new(next)), 0.0)
        .expect("structure");
    late.receive(
        Incoming::Partition {
            state: old.clone(),
            publisher: "member-2".into(),
        },
        0.0,
    )
    .expect("state");
    let seen = late.state_of(&key(4)).expect("known");
    assert_eq!(seen.epoch, old.epoch + 1);
    assert_eq!(seen.stats.weights()[0], 0.0);
    assert_eq!(seen.stats.weights()[1], old.stats.weights()[1]);
    assert_eq!(seen.points, old.points);
}

#[test]
fn stepwise_em_cannot_be_shared() {
    let s = OnlineSettings {
        schedule: Schedule::Stepwise {
            alpha: 0.7,
            t0: 0.0,
        },
        ..OnlineSettings::new(3)
    };
    let err = GroupEstimator::new(s, "m").err().expect("refused");
    assert!(err.to_string().contains("stepwise"), "{err}");
}

#[test]
fn every_clock_and_covariance_type_is_shared() {
    use gmm_model::CovarianceType;
    // Half-lives of about 3000 points in each unit: 600 points a round, a second a
    // round, three members' batches a round (one for the estimator reading all).
    for (unit, h, single_h) in [
        (HalfLifeUnit::Points, 3000.0, 3000.0),
        (HalfLifeUnit::Seconds, 5.0, 5.0),
        (HalfLifeUnit::Batches, 15.0, 5.0),
    ] {
        for t in CovarianceType::ALL {
            let s = OnlineSettings {
                covariance_type: t,
                schedule: Schedule::Decay {
                    half_life: Some(h),
                    unit,
                },
                ..settings(6, 900, h)
            };
            let mut run = Run::new(&s, vec![vec![0, 1], vec![2, 3], vec![4, 5]], 8);
            for _ in 0..25 {
                run.round(100);
            }
            run.catch_up();
            let one = OnlineSettings {
                schedule: Schedule::Decay {
                    half_life: Some(single_h),
                    unit,
                },
                ..s.clone()
            };
            let single = run.single(&one);
            let test = held_out(0.0, 500);
            let reference = mean_ll(single.model().expect("a model"), &test);
            let first = run.members[0].model().clone();
            for m in &run.members {
                assert_eq!(m.model(), &first, "{unit} {t}");
                assert_eq!(m.est.points_seen(), run.produced);
            }
            let ll = mean_ll(&first, &test);
            eprintln!("{unit} {t}: group {ll:.4}, one estimator {reference:.4}");
            assert!(
                (ll - reference).abs() < 0.02,
                "{unit} {t}: {ll} vs {reference}"
            );
        }
    }
}
