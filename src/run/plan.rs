//! The sweep as it is planned into a results folder (`results::plan::ExperimentPlan`, which
//! `runner status` reads): built from the experiment and its run ids, recorded by `runner run`
//! (which goes on without it) and by `runner slurm` (which needs it).

use std::path::Path;

use super::swept_values;
use crate::results::layout::ResultsRoot;
use crate::results::plan::{ExperimentPlan, PlannedPoint};
use crate::spec::Experiment;

/// The plan of `exp`'s runs, whose ids are `ids` (in plan order), with its `--set` overrides.
pub(crate) fn of(exp: &Experiment, ids: &[String], overrides: &[String]) -> ExperimentPlan {
    ExperimentPlan {
        experiment: exp.name.clone(),
        spec: exp.source.clone(),
        overrides: overrides.to_vec(),
        planned_at: crate::durable::timestamp::now_utc(),
        points: exp
            .runs
            .iter()
            .zip(ids)
            .map(|(r, id)| PlannedPoint {
                number: r.index + 1,
                run_id: id.clone(),
                swept: swept_values(r)
                    .into_iter()
                    .map(|(k, v)| (k, v.to_string()))
                    .collect(),
                epochs: r.spec.train.epochs as usize,
            })
            .collect(),
    }
}

/// Records `plan` under `results`. `runner status` reads it, but not being able to record it (a
/// read-only results tree) must not stand between the user and runs that are done, or that can
/// be written elsewhere: then it says what `runner status` will show instead, and goes on.
pub(crate) fn record_or_warn(plan: &ExperimentPlan, results: &Path) {
    if let Err(e) = plan.write(results) {
        let experiment = ResultsRoot::new(results).experiment(&plan.experiment);
        let earlier = ExperimentPlan::read(experiment.path()).is_ok();
        tracing::warn!(
            "the plan is not recorded ({e}): `runner status` {}",
            if earlier {
                "shows the plan recorded earlier"
            } else {
                "will not list this sweep's points"
            }
        );
    }
}
