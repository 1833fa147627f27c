//! Progress bars (bytes, rate, ETA per blob) on a terminal, via indicatif. Only used when
//! stderr is a TTY; jobs and Lambda get log lines instead.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use trivy_mirror::progress::{Progress, Transfer};

/// One bar per blob transfer.
#[derive(Debug, Default)]
pub(crate) struct Bars {
    multi: MultiProgress,
}

struct Bar(ProgressBar);

impl Transfer for Bar {
    fn advance(&self, n: u64) {
        self.0.inc(n);
    }

    fn finish(&self) {
        if !self.0.is_finished() {
            self.0.finish();
        }
    }
}

impl Progress for Bars {
    fn start(&self, label: &str, total: u64) -> Box<dyn Transfer> {
        let bar = self.multi.add(ProgressBar::new(total));
        let style = ProgressStyle::with_template(
            "{msg:32} [{bar:30}] {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(label.to_string());
        Box::new(Bar(bar))
    }
}
