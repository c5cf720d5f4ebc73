//! Splitting a play's hosts into `serial` batches, as Ansible's `_get_serialized_batches`.

use crate::playbook::SerialStep;

/// Batches of hosts: each step of `serial` gives one batch size; the last step repeats.
pub fn serial_batches(hosts: &[String], serial: &[SerialStep]) -> Vec<Vec<String>> {
    if serial.is_empty() || hosts.is_empty() {
        return vec![hosts.to_vec()];
    }
    let total = hosts.len();
    let size_of = |step: &SerialStep| -> usize {
        match step {
            SerialStep::Count(n) => (*n as usize).max(1),
            // pct_to_int: int(total * pct / 100), at least 1
            SerialStep::Percent(p) => (((total as f64) * p / 100.0) as usize).max(1),
        }
    };
    let mut batches = Vec::new();
    let mut rest = hosts;
    let mut step = 0;
    while !rest.is_empty() {
        let size = size_of(&serial[step.min(serial.len() - 1)]).min(rest.len());
        batches.push(rest[..size].to_vec());
        rest = &rest[size..];
        step += 1;
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("h{i}")).collect()
    }

    #[test]
    fn list_with_percent_repeats_last() {
        let b = serial_batches(
            &hosts(5),
            &[SerialStep::Count(1), SerialStep::Percent(50.0)],
        );
        let sizes: Vec<_> = b.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 2, 2]);
    }

    #[test]
    fn percent_rounds_down_but_at_least_one() {
        let b = serial_batches(&hosts(3), &[SerialStep::Percent(10.0)]);
        assert_eq!(b.len(), 3);
    }

    #[test]
    fn no_serial_is_one_batch() {
        assert_eq!(serial_batches(&hosts(4), &[]).len(), 1);
    }
}
