//! The Experiments service: dependability experiment runs on labs. The
//! engine is in `experiment/`.

use dclab_proto::v1::{self, experiments_server::Experiments as ExperimentsApi};
use tonic::{Request, Response, Status};

use crate::experiment::Experiments;

pub struct ExperimentsService {
    pub experiments: Experiments,
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl ExperimentsApi for ExperimentsService {
    type RunExperimentStream = crate::experiment::RunStream;

    async fn run_experiment(
        &self,
        req: Request<v1::RunExperimentRequest>,
    ) -> Reply<Self::RunExperimentStream> {
        Ok(Response::new(
            crate::experiment::start(self.experiments.clone(), req.into_inner()).await?,
        ))
    }

    async fn abort_run(&self, req: Request<v1::RunRef>) -> Reply<v1::Empty> {
        crate::experiment::abort(&self.experiments, &req.into_inner().id)?;
        Ok(Response::new(v1::Empty {}))
    }

    async fn continue_run(&self, req: Request<v1::RunRef>) -> Reply<v1::Empty> {
        crate::experiment::proceed(&self.experiments, &req.into_inner().id)?;
        Ok(Response::new(v1::Empty {}))
    }

    async fn list_runs(&self, req: Request<v1::ListRunsRequest>) -> Reply<v1::ListRunsResponse> {
        Ok(Response::new(crate::experiment::list(
            &self.experiments,
            &req.into_inner().lab,
        )?))
    }

    async fn get_run(&self, req: Request<v1::RunRef>) -> Reply<v1::Run> {
        Ok(Response::new(crate::experiment::get(
            &self.experiments,
            &req.into_inner().id,
        )?))
    }
}
