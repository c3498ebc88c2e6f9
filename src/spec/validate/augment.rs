//! Checks of `transforms.random_resized_crop` and `transforms.color_jitter` (see `spec::augment`).

use super::Checker;
use crate::spec::resolved::RunSpec;

impl Checker<'_> {
    pub(super) fn augment(&mut self, spec: &RunSpec) {
        let t = &spec.transforms;
        let r = &t.random_resized_crop;
        if r.enabled {
            if t.crop == 0 {
                self.errors.push(
                    self.invalid(
                        "transforms.random_resized_crop",
                        "expected transforms.crop > 0: the crop's output side".to_owned(),
                    )
                    .note(self.where_set("transforms.crop"))
                    .help("set transforms.crop, e.g. 224 (val keeps resize + center crop)"),
                );
            }
            if t.random_crop {
                self.errors.push(
                    self.invalid(
                        "transforms.random_resized_crop",
                        "expected random_crop = false: both choose the train crop".to_owned(),
                    )
                    .note(self.where_set("transforms.random_crop")),
                );
            }
            let [lo, hi] = r.scale;
            if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
                self.errors.push(self.invalid(
                    "transforms.random_resized_crop.scale",
                    format!("expected [min, max] with 0 < min <= max <= 1, found [{lo}, {hi}]"),
                ));
            }
            let [lo, hi] = r.ratio;
            if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
                self.errors.push(self.invalid(
                    "transforms.random_resized_crop.ratio",
                    format!("expected [min, max] with 0 < min <= max, found [{lo}, {hi}]"),
                ));
            }
        }
        let j = &t.color_jitter;
        for (key, v) in [
            ("transforms.color_jitter.brightness", j.brightness),
            ("transforms.color_jitter.contrast", j.contrast),
            ("transforms.color_jitter.saturation", j.saturation),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                self.errors.push(
                    self.invalid(key, format!("expected a number >= 0, found {v}"))
                        .note("the factor is drawn uniformly from [max(0, 1 − x), 1 + x]"),
                );
            }
        }
    }
}
