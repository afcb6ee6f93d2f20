//! Several nodes' runners as one: a plan made for one node and spread over several with
//! [`Plan::across`](super::Plan::across) runs in one executor run. A step `…@node` goes to that
//! node's runner, which sees it (its deps and its inputs) without the node; a node-less step
//! (`build:*`) goes to the first node's runner. A rollback asks each node's runner to undo its
//! steps.

use super::exec::{Fresh, Inputs, Ran, Runner};
use super::Step;

pub(crate) struct Fleet<R> {
    /// `(node name as in step ids, its runner)`; the first runs the node-less steps.
    pub nodes: Vec<(String, R)>,
}

impl<R: Runner> Fleet<R> {
    /// The runner of `step`'s node and the step as that runner knows it.
    pub(crate) fn route(&self, step: &Step) -> (&R, Step) {
        let mut local = step.clone();
        let node = local.id.node.take();
        for d in &mut local.deps {
            d.node = None;
        }
        let runner = match node {
            Some(n) => &self.nodes.iter().find(|(x, _)| *x == n).expect("a step of a node of this fleet").1,
            None => &self.nodes[0].1,
        };
        (runner, local)
    }
}

impl<R: Runner> Runner for Fleet<R> {
    type Error = R::Error;
    type Output = R::Output;

    fn up_to_date(&self, step: &Step, inputs: &Inputs<'_, R::Output>) -> Result<Option<Fresh<R::Output>>, R::Error> {
        let (runner, local) = self.route(step);
        runner.up_to_date(&local, &inputs.local())
    }

    fn run(&self, step: &Step, inputs: &Inputs<'_, R::Output>) -> Result<Ran<R::Output>, R::Error> {
        let (runner, local) = self.route(step);
        runner.run(&local, &inputs.local())
    }

    fn batched(&self, step: &Step) -> bool {
        let (runner, local) = self.route(step);
        // Only node-less steps batch: a batch runs on one runner.
        step.id.node.is_none() && runner.batched(&local)
    }

    fn run_batch(&self, steps: &[(&Step, Inputs<'_, R::Output>)]) -> Vec<Result<Ran<R::Output>, R::Error>> {
        let local: Vec<Step> = steps.iter().map(|(s, _)| self.route(s).1).collect();
        let with: Vec<(&Step, Inputs<'_, R::Output>)> =
            local.iter().zip(steps).map(|(s, (_, inputs))| (s, inputs.local())).collect();
        self.nodes[0].1.run_batch(&with)
    }

    fn rollback(&self, ran: &[&Step]) {
        let first = self.nodes[0].0.as_str();
        for (name, runner) in &self.nodes {
            // Node-less steps are the first runner's, as in `route`.
            let mine: Vec<Step> =
                ran.iter().filter(|s| s.id.node.as_deref().unwrap_or(first) == name).map(|s| self.route(s).1).collect();
            runner.rollback(&mine.iter().collect::<Vec<_>>());
        }
    }
}
