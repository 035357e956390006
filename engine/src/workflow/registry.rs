//! The registry of workflows and their steps, found by stable name; duplicates fail at start-up.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::{Step, StepContext, StepPolicy, Transition};
use crate::error::{EngineError, Result, StepError};

/// A step with its input type erased to JSON, as the runtime calls it.
pub(crate) trait ErasedStep: Send + Sync {
    fn name(&self) -> &'static str;
    fn policy(&self) -> StepPolicy;
    fn run<'a>(
        &'a self,
        ctx: &'a StepContext,
        input: serde_json::Value,
    ) -> BoxFuture<'a, Result<Transition, StepError>>;
}

impl<S: Step> ErasedStep for S {
    fn name(&self) -> &'static str {
        S::NAME
    }

    fn policy(&self) -> StepPolicy {
        Step::policy(self)
    }

    fn run<'a>(
        &'a self,
        ctx: &'a StepContext,
        input: serde_json::Value,
    ) -> BoxFuture<'a, Result<Transition, StepError>> {
        Box::pin(async move {
            let input: S::Input = serde_json::from_value(input).map_err(|e| {
                StepError::Fatal(format!("input of step {} does not decode: {e}", S::NAME))
            })?;
            Step::run(self, ctx, input).await
        })
    }
}

/// A named workflow: its steps by name and the step a new run starts with.
#[derive(Clone)]
pub struct Workflow {
    name: &'static str,
    steps: HashMap<&'static str, Arc<dyn ErasedStep>>,
    order: Vec<&'static str>,
}

impl std::fmt::Debug for Workflow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workflow")
            .field("name", &self.name)
            .field("steps", &self.order)
            .finish()
    }
}

/// Builds a [`Workflow`] step by step; a run may start at any of its steps.
pub struct WorkflowBuilder {
    name: &'static str,
    steps: Vec<(&'static str, Arc<dyn ErasedStep>)>,
}

impl Workflow {
    /// Starts a workflow definition.
    pub fn builder(name: &'static str) -> WorkflowBuilder {
        WorkflowBuilder {
            name,
            steps: Vec::new(),
        }
    }

    /// The workflow's name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Step names in definition order.
    pub fn step_names(&self) -> &[&'static str] {
        &self.order
    }

    pub(crate) fn step(&self, name: &str) -> Option<&Arc<dyn ErasedStep>> {
        self.steps.get(name)
    }
}

impl WorkflowBuilder {
    /// Adds a step.
    pub fn step<S: Step>(mut self, step: S) -> Self {
        self.steps.push((S::NAME, Arc::new(step)));
        self
    }

    /// Checks the definition: at least one step, no name twice.
    pub fn build(self) -> Result<Workflow> {
        if self.steps.is_empty() {
            return Err(EngineError::Definition(format!(
                "workflow {} has no steps",
                self.name
            )));
        }
        let mut steps = HashMap::new();
        let mut order = Vec::new();
        for (name, step) in self.steps {
            if steps.insert(name, step).is_some() {
                return Err(EngineError::Definition(format!(
                    "workflow {} registers step {name} twice",
                    self.name
                )));
            }
            order.push(name);
        }
        Ok(Workflow {
            name: self.name,
            steps,
            order,
        })
    }
}

/// All workflows this process can run.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    workflows: HashMap<&'static str, Workflow>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a workflow; a name registered twice is an error.
    pub fn register(mut self, wf: Workflow) -> Result<Self> {
        let name = wf.name;
        if self.workflows.insert(name, wf).is_some() {
            return Err(EngineError::Definition(format!(
                "workflow {name} registered twice"
            )));
        }
        Ok(self)
    }

    /// Finds a workflow by name.
    pub fn get(&self, name: &str) -> Option<&Workflow> {
        self.workflows.get(name)
    }

    /// The step names of every workflow, sorted, each once.
    pub fn step_names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self
            .workflows
            .values()
            .flat_map(|w| w.step_names().iter().copied())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}
