//! Cuts the stream of decoded records into mini-batches: a batch closes at the
//! first record boundary at or past `batch_size` points, or `timeout` after its
//! first point arrived, so a slow stream still updates the model. Each batch carries
//! the source position after its last record.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::source::chunk::{Ack, Chunk, RecordMark, Rejected, SourceMsg};
use gmm_io::Positions;

pub struct Batch {
    /// Row-major points.
    pub values: Vec<f64>,
    pub n_points: usize,
    /// The batch's records, `points_end` counted from the batch's start.
    pub marks: Vec<RecordMark>,
    /// Where the next unread point is once this batch is absorbed.
    pub positions: Positions,
}

impl Batch {
    pub fn dim(&self) -> usize {
        self.values.len().checked_div(self.n_points).unwrap_or(0)
    }
}

pub enum BatchMsg {
    Batch(Batch),
    /// Records that held no usable point (all rejected) were consumed: the
    /// position moves past them.
    Positions(Positions),
    /// Snapshot and commit everything absorbed so far, then answer.
    Flush(Ack),
    /// The source is exhausted; everything before was sent. The position may have
    /// moved past trailing rejected records.
    End {
        positions: Positions,
    },
}

pub struct Batcher {
    pub batch_size: usize,
    pub timeout: Duration,
    pub positions: Positions,
    /// Shutdown: stop at once, without waiting for the source to go away (a read
    /// of an idle stdin may never return).
    pub cancel: CancellationToken,
}

struct Pending {
    values: Vec<f64>,
    n_points: usize,
    marks: Vec<RecordMark>,
    deadline: Option<Instant>,
}

impl Pending {
    fn new() -> Self {
        Self {
            values: Vec::new(),
            n_points: 0,
            marks: Vec::new(),
            deadline: None,
        }
    }
}

impl Batcher {
    /// Runs until the source ends (the partial batch is sent, then `End`), goes
    /// away without ending, or shutdown is asked (the partial batch is dropped, so
    /// the last snapshot's positions still point at its first record).
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<SourceMsg>,
        tx: mpsc::Sender<BatchMsg>,
        rejects: mpsc::Sender<Vec<Rejected>>,
    ) {
        let mut pending = Pending::new();
        let cancel = self.cancel.clone();
        loop {
            let msg = match pending.deadline {
                Some(deadline) => tokio::select! {
                    biased;
                    () = cancel.cancelled() => return,
                    msg = rx.recv() => msg,
                    () = tokio::time::sleep_until(deadline) => {
                        if !self.emit_or_advance(&mut pending, &tx).await {
                            return;
                        }
                        continue;
                    }
                },
                None => tokio::select! {
                    biased;
                    () = cancel.cancelled() => return,
                    msg = rx.recv() => msg,
                },
            };
            match msg {
                Some(SourceMsg::Chunk(mut chunk)) => {
                    if !chunk.rejects.is_empty() {
                        let _ = rejects.send(std::mem::take(&mut chunk.rejects)).await;
                    }
                    if !self.absorb(chunk, &mut pending, &tx).await {
                        return;
                    }
                }
                Some(SourceMsg::Flush(ack)) => {
                    if !self.emit_or_advance(&mut pending, &tx).await
                        || tx.send(BatchMsg::Flush(ack)).await.is_err()
                    {
                        return;
                    }
                }
                Some(SourceMsg::End) => {
                    if self.emit(&mut pending, &tx).await {
                        let positions = self.positions.clone();
                        let _ = tx.send(BatchMsg::End { positions }).await;
                    }
                    return;
                }
                None => return,
            }
        }
    }

    /// Adds a chunk record by record, sending every batch that fills up. False
    /// when the estimator is gone.
    async fn absorb(
        &mut self,
        chunk: Chunk,
        pending: &mut Pending,
        tx: &mpsc::Sender<BatchMsg>,
    ) -> bool {
        let total = chunk.marks.last().map_or(0, |m| m.points_end);
        let dim = chunk.values.len().checked_div(total).unwrap_or(0);
        // Points are copied in runs (up to each batch's cut, then the rest), not
        // record by record: with one point per record that was a copy per point.
        let (mut start, mut copied) = (0, 0);
        for mark in chunk.marks {
            let end = mark.points_end;
            if end > start {
                pending.n_points += end - start;
            }
            // Rejected records too: on a quiet stream, the position must still
            // move past them in time (committed offsets, no dead letter twice).
            if pending.deadline.is_none() {
                pending.deadline = Some(Instant::now() + self.timeout);
            }
            start = end;
            mark.origin.advance(&mut self.positions);
            pending.marks.push(RecordMark {
                points_end: pending.n_points,
                origin: mark.origin,
            });
            if pending.n_points >= self.batch_size {
                self.copy(pending, &chunk.values[copied * dim..end * dim], dim);
                copied = end;
                if !self.emit(pending, tx).await {
                    return false;
                }
            }
        }
        self.copy(pending, &chunk.values[copied * dim..start * dim], dim);
        true
    }

    /// As [`Batcher::emit`], but when the pending records were all rejected, sends
    /// the position past them. False when the estimator is gone.
    async fn emit_or_advance(
        &mut self,
        pending: &mut Pending,
        tx: &mpsc::Sender<BatchMsg>,
    ) -> bool {
        if pending.n_points > 0 || pending.marks.is_empty() {
            return self.emit(pending, tx).await;
        }
        *pending = Pending::new();
        tx.send(BatchMsg::Positions(self.positions.clone()))
            .await
            .is_ok()
    }

    /// Appends points to the pending batch, which is sized for a whole batch at
    /// its first points rather than grown by doubling.
    fn copy(&self, pending: &mut Pending, values: &[f64], dim: usize) {
        if pending.values.capacity() == 0 && !values.is_empty() {
            pending.values.reserve(self.batch_size.saturating_mul(dim));
        }
        pending.values.extend_from_slice(values);
    }

    /// Sends the pending points as a batch (nothing if there are none). False when
    /// the estimator is gone.
    async fn emit(&mut self, pending: &mut Pending, tx: &mpsc::Sender<BatchMsg>) -> bool {
        let taken = std::mem::replace(pending, Pending::new());
        if taken.n_points == 0 {
            // Records that were all rejected still moved the position; the next
            // batch will carry it.
            pending.marks = taken.marks;
            return true;
        }
        let batch = Batch {
            values: taken.values,
            n_points: taken.n_points,
            marks: taken.marks,
            positions: self.positions.clone(),
        };
        tx.send(BatchMsg::Batch(batch)).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::chunk::Origin;
    use gmm_io::RejectReason;

    /// A chunk of records of the given sizes, 2-d points numbered from `first`,
    /// record r ending at byte offset `10 * (index + 1)`.
    fn chunk(first_record: u64, sizes: &[usize]) -> Chunk {
        let mut c = Chunk::default();
        let mut n = 0;
        for (i, &size) in sizes.iter().enumerate() {
            for _ in 0..size {
                c.values.extend_from_slice(&[n as f64, -(n as f64)]);
                n += 1;
            }
            c.marks.push(RecordMark {
                points_end: n,
                origin: Origin::Next(10 * (first_record + i as u64 + 1)),
            });
        }
        c
    }

    fn batcher(size: usize, timeout_ms: u64) -> Batcher {
        Batcher {
            batch_size: size,
            timeout: Duration::from_millis(timeout_ms),
            positions: Positions::file(std::path::Path::new("in.csv"), 0),
            cancel: CancellationToken::new(),
        }
    }

    fn offset(p: &Positions) -> u64 {
        match p {
            Positions::File { offset, .. } => *offset,
            other => panic!("not a file position: {other:?}"),
        }
    }

    async fn collect(b: Batcher, msgs: Vec<SourceMsg>) -> Vec<BatchMsg> {
        let (src_tx, src_rx) = mpsc::channel(16);
        let (tx, mut rx) = mpsc::channel(16);
        let (rej_tx, _rej_rx) = mpsc::channel(16);
        for m in msgs {
            src_tx.send(m).await.expect("send");
        }
        drop(src_tx);
        b.run(src_rx, tx, rej_tx).await;
        let mut out = Vec::new();
        while let Some(m) = rx.recv().await {
            out.push(m);
        }
        out
    }

    #[tokio::test]
    async fn batches_close_at_record_boundaries_with_exact_positions() {
        // Records of 3, 3, 3, 1 points and a batch size of 4: a batch never splits
        // a record, so the cuts fall after 6 and after 10 points.
        let out = collect(
            batcher(4, 10_000),
            vec![SourceMsg::Chunk(chunk(0, &[3, 3, 3, 1])), SourceMsg::End],
        )
        .await;
        let batches: Vec<&Batch> = out
            .iter()
            .filter_map(|m| match m {
                BatchMsg::Batch(b) => Some(b),
                _ => None,
            })
            .collect();
        assert_eq!(
            batches.iter().map(|b| b.n_points).collect::<Vec<_>>(),
            vec![6, 4]
        );
        assert_eq!(offset(&batches[0].positions), 20);
        assert_eq!(offset(&batches[1].positions), 40);
        assert_eq!(batches[0].dim(), 2);
        assert_eq!(batches[1].values[..2], [6.0, -6.0]);
        assert_eq!(
            batches[1]
                .marks
                .iter()
                .map(|m| m.points_end)
                .collect::<Vec<_>>(),
            vec![3, 4]
        );
        assert!(matches!(out.last(), Some(BatchMsg::End { positions }) if offset(positions) == 40));
    }

    #[tokio::test]
    async fn trailing_rejected_records_move_the_final_position() {
        let mut rejected = chunk(2, &[0, 0]);
        rejected.rejects.push(Rejected {
            reject: gmm_io::Reject::new(RejectReason::Parse, "not a number"),
            location: "line 3".into(),
            start: Some(20),
            line: Some(3),
            payload: b"x".to_vec(),
            origin: Origin::Next(30),
        });
        // The full batch goes out after 4 points; the rejected records after it
        // carry no points, so only `End` can tell where the input really ended.
        let out = collect(
            batcher(4, 10_000),
            vec![
                SourceMsg::Chunk(chunk(0, &[2, 2])),
                SourceMsg::Chunk(rejected),
                SourceMsg::End,
            ],
        )
        .await;
        assert_eq!(out.len(), 2);
        assert!(
            matches!(&out[0], BatchMsg::Batch(b) if b.n_points == 4 && offset(&b.positions) == 20)
        );
        assert!(matches!(&out[1], BatchMsg::End { positions } if offset(positions) == 40));
    }

    #[tokio::test]
    async fn a_source_that_goes_away_without_ending_drops_its_partial_batch() {
        let out = collect(batcher(100, 10_000), vec![SourceMsg::Chunk(chunk(0, &[5]))]).await;
        assert!(out.is_empty(), "a partial batch was sent on shutdown");
    }

    #[tokio::test]
    async fn shutdown_drops_the_partial_batch_without_waiting_for_the_source() {
        let (src_tx, src_rx) = mpsc::channel(16);
        let (tx, mut rx) = mpsc::channel(16);
        let (rej_tx, _rej_rx) = mpsc::channel(16);
        let b = batcher(100, 10_000);
        let cancel = b.cancel.clone();
        let task = tokio::spawn(b.run(src_rx, tx, rej_tx));
        src_tx
            .send(SourceMsg::Chunk(chunk(0, &[5])))
            .await
            .expect("send");
        tokio::task::yield_now().await;
        // The source is still there (src_tx lives), as a reader blocked on input.
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the batcher stops on shutdown")
            .expect("no panic");
        assert!(rx.recv().await.is_none(), "a partial batch was sent");
        drop(src_tx);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_stream_closes_partial_batches_on_time() {
        let (src_tx, src_rx) = mpsc::channel(16);
        let (tx, mut rx) = mpsc::channel(16);
        let (rej_tx, _rej_rx) = mpsc::channel(16);
        let task = tokio::spawn(batcher(1_000, 500).run(src_rx, tx, rej_tx));
        src_tx
            .send(SourceMsg::Chunk(chunk(0, &[2])))
            .await
            .expect("send");
        tokio::time::sleep(Duration::from_millis(499)).await;
        assert!(rx.try_recv().is_err(), "closed too early");
        tokio::time::sleep(Duration::from_millis(2)).await;
        match rx.recv().await {
            Some(BatchMsg::Batch(b)) => assert_eq!((b.n_points, offset(&b.positions)), (2, 10)),
            _ => panic!("expected a batch after the timeout"),
        }
        drop(src_tx);
        task.await.expect("batcher ends");
    }

    #[tokio::test(start_paused = true)]
    async fn rejected_records_alone_move_the_position_on_time() {
        let (src_tx, src_rx) = mpsc::channel(16);
        let (tx, mut rx) = mpsc::channel(16);
        let (rej_tx, _rej_rx) = mpsc::channel(16);
        let task = tokio::spawn(batcher(1_000, 500).run(src_rx, tx, rej_tx));
        // One record holding points, then one that was rejected whole: after the
        // timeout the batch goes out; the rejected record alone moves the position
        // after another timeout, with no batch to carry it.
        src_tx
            .send(SourceMsg::Chunk(chunk(0, &[2])))
            .await
            .expect("send");
        tokio::time::sleep(Duration::from_millis(501)).await;
        match rx.recv().await {
            Some(BatchMsg::Batch(b)) => assert_eq!(offset(&b.positions), 10),
            _ => panic!("expected a batch after the timeout"),
        }
        src_tx
            .send(SourceMsg::Chunk(chunk(1, &[0])))
            .await
            .expect("send");
        tokio::time::sleep(Duration::from_millis(499)).await;
        assert!(rx.try_recv().is_err(), "moved too early");
        tokio::time::sleep(Duration::from_millis(2)).await;
        match rx.recv().await {
            Some(BatchMsg::Positions(p)) => assert_eq!(offset(&p), 20),
            _ => panic!("expected the position past the rejected record"),
        }
        drop(src_tx);
        task.await.expect("batcher ends");
    }
}
