//! Extractors whose rejections come out in the API's error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, JSON_BODY_LIMIT};

/// `axum::Json` with rejections as [`ApiError`]; `LIMIT` is the route's body limit (set by its
/// `DefaultBodyLimit` layer), named in a 413. A body holding a NUL is refused (see
/// [`crate::storable`]).
pub struct Json<T, const LIMIT: usize = JSON_BODY_LIMIT>(pub T);

impl<S: Send + Sync, T: DeserializeOwned, const LIMIT: usize> FromRequest<S> for Json<T, LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let Body(bytes) =
            Body::<LIMIT>::from_request(Request::from_parts(parts.clone(), body), state).await?;
        let again = Request::from_parts(parts, axum::body::Body::from(bytes.clone()));
        let axum::Json(v) = axum::Json::<T>::from_request(again, state)
            .await
            .map_err(|r| ApiError::from_json_rejection(r, LIMIT))?;
        crate::storable::check_json(&bytes)?;
        Ok(Json(v))
    }
}

/// The raw body with rejections as [`ApiError`]; `LIMIT` as for [`Json`].
pub struct Body<const LIMIT: usize>(pub Bytes);

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for Body<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|r| ApiError::from_bytes_rejection(r, LIMIT))?;
        Ok(Body(bytes))
    }
}

/// `axum::extract::Query` with rejections as [`ApiError`].
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(v) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Query(v))
    }
}

/// `axum::extract::Path` with rejections as [`ApiError`].
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(v) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(v))
    }
}
