//! The points a picture shows: read with the CLI's input rules, kept to a bounded,
//! deterministic uniform sample so that a file of any size draws in bounded memory
//! and the same file always gives the same picture.

use gmm_model::Points;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::super::error::CliError;
use super::super::input::{explain_dim, report_skipped, InputArgs};

/// Points read at a time.
const CHUNK_POINTS: usize = 16 * 1024;

/// The sample's seed is fixed: a picture is a function of its inputs.
const SAMPLE_SEED: u64 = 0x706c6f74; // "plot"

/// At most `max_points` points of a file, drawn uniformly, row-major.
pub struct Sample {
    pub values: Vec<f64>,
    pub dim: usize,
    /// Valid points in the whole input.
    pub total: u64,
    /// How captions name the input: its file name (the directory would crowd them).
    pub name: String,
    /// The coordinates' names, when `--fields` gave them.
    pub fields: Option<Vec<String>>,
}

impl Sample {
    pub fn len(&self) -> usize {
        self.values.len() / self.dim
    }

    /// The sample as the model's d×n matrix (`values` holds whole points of `dim`
    /// coordinates by construction).
    pub fn points(&self) -> Points<'_> {
        Points::from_slice(&self.values, self.dim, self.len())
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// "N points" or "N of M points", for captions.
    pub fn describe(&self) -> String {
        if self.total as usize == self.len() {
            format!("{} points of {}", self.len(), self.name)
        } else {
            format!(
                "{} of the {} points of {} (uniform sample)",
                self.len(),
                self.total,
                self.name
            )
        }
    }
}

/// Reads `input`, whose points must have the model's dimension, keeping a uniform
/// sample of at most `max_points` (all of them, in order, when there are fewer).
pub fn read_sample(
    input: &InputArgs,
    (model_name, d): (&str, usize),
    max_points: usize,
) -> Result<Sample, CliError> {
    input.check_against_model(model_name, d)?;
    let mut reader = input.reader(Some(d))?;
    let mut reservoir = Reservoir::new(max_points, d);
    let mut chunk = Vec::with_capacity(CHUNK_POINTS * d);
    loop {
        chunk.clear();
        let n = reader
            .fill(&mut chunk, CHUNK_POINTS)
            .map_err(|e| explain_dim(e, Some((model_name, d))))?;
        if n == 0 {
            break;
        }
        chunk.chunks_exact(d).for_each(|p| reservoir.offer(p));
    }
    report_skipped(&reader);
    Ok(Sample {
        values: reservoir.values,
        dim: d,
        total: reservoir.seen,
        name: match input.input.file_name() {
            Some(name) if !input.is_stdin() => name.to_string_lossy().into_owned(),
            _ => reader.name().to_owned(),
        },
        fields: input.fields.clone(),
    })
}

/// Vitter's algorithm R: after n offers, every point is kept with probability
/// capacity/n, in one pass and bounded memory.
struct Reservoir {
    capacity: usize,
    dim: usize,
    values: Vec<f64>,
    seen: u64,
    rng: ChaCha8Rng,
}

impl Reservoir {
    fn new(capacity: usize, dim: usize) -> Self {
        Self {
            capacity,
            dim,
            values: Vec::new(),
            seen: 0,
            rng: ChaCha8Rng::seed_from_u64(SAMPLE_SEED),
        }
    }

    fn offer(&mut self, point: &[f64]) {
        self.seen += 1;
        if self.values.len() < self.capacity * self.dim {
            self.values.extend_from_slice(point);
            return;
        }
        let slot = self.rng.random_range(0..self.seen);
        if let Ok(slot) = usize::try_from(slot) {
            if slot < self.capacity {
                self.values[slot * self.dim..(slot + 1) * self.dim].copy_from_slice(point);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize, capacity: usize) -> Vec<f64> {
        let mut r = Reservoir::new(capacity, 1);
        (0..n).for_each(|i| r.offer(&[i as f64]));
        assert_eq!(r.seen, n as u64);
        r.values
    }

    #[test]
    fn a_small_input_is_kept_whole_and_in_order() {
        assert_eq!(sample(5, 10), vec![0.0, 1.0, 2.0, 3.0, 4.0]);
    }

    #[test]
    fn a_large_input_gives_the_same_uniform_sample_every_time() {
        let a = sample(100_000, 1000);
        assert_eq!(a, sample(100_000, 1000), "deterministic");
        assert_eq!(a.len(), 1000);
        // Uniform: the kept indices spread over the whole input (mean about n/2,
        // standard error n/sqrt(12 * 1000) ≈ 913).
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        assert!((mean - 50_000.0).abs() < 4000.0, "{mean}");
        let late = a.iter().filter(|&&x| x >= 90_000.0).count();
        assert!(
            (60..=140).contains(&late),
            "{late} of 1000 from the last tenth"
        );
    }
}
