//! Every HTTP route of the server is added through [`Api`], which records the method and path
//! beside the axum router. The list is what the OpenAPI document (`/api/openapi.json`) is
//! checked against, so a route cannot be served without being documented. `server/clippy.toml`
//! forbids `Router::route` elsewhere.

use axum::Router;
use axum::handler::Handler;
use axum::routing::{self, MethodRouter};

/// One served operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route {
    /// Upper-case HTTP method (`GET`, `POST`); axum answers HEAD for every GET too.
    pub method: &'static str,
    /// The path as axum matches it (`/api/v1/log/entries/{id}`, `/api/v2/tile/{*path}`).
    pub path: &'static str,
}

/// A router and the routes it serves.
pub struct Api<S = ()> {
    router: Router<S>,
    routes: Vec<Route>,
}

impl<S: Clone + Send + Sync + 'static> Default for Api<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Api<S> {
    pub fn new() -> Self {
        Api {
            router: Router::new(),
            routes: Vec::new(),
        }
    }

    pub fn get<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.method_router("GET", path, routing::get(handler))
    }

    pub fn post<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        self.method_router("POST", path, routing::post(handler))
    }

    /// A route whose method router the caller built (to put a layer on it); `method` must be
    /// the one method it routes.
    pub fn method_router(
        mut self,
        method: &'static str,
        path: &'static str,
        method_router: MethodRouter<S>,
    ) -> Self {
        #[allow(clippy::disallowed_methods)]
        {
            self.router = self.router.route(path, method_router);
        }
        self.routes.push(Route { method, path });
        self
    }

    /// Apply layers (or anything else) to the router built so far.
    pub fn map_router(mut self, f: impl FnOnce(Router<S>) -> Router<S>) -> Self {
        self.router = f(self.router);
        self
    }

    pub fn with_state<S2: Clone + Send + Sync + 'static>(self, state: S) -> Api<S2> {
        Api {
            router: self.router.with_state(state),
            routes: self.routes,
        }
    }

    pub fn merge(mut self, other: Api<S>) -> Self {
        self.router = self.router.merge(other.router);
        self.routes.extend(other.routes);
        self
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    pub fn into_parts(self) -> (Router<S>, Vec<Route>) {
        (self.router, self.routes)
    }
}
