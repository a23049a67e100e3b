//! Options shared by every class: connection settings and the parsing of small enums.

use pyo3::prelude::*;
use pyo3::types::{PyInt, PyString};
use sluice_client::{Acks, ClientOptions};

use crate::errors::invalid_input;

/// Connection settings every class takes as keyword arguments.
#[derive(Debug, Clone)]
pub(crate) struct Connect {
    pub url: String,
    pub options: ClientOptions,
}

impl Connect {
    pub(crate) fn new(
        url: &str,
        request_timeout_ms: u64,
        connect_timeout_ms: u64,
        client_name: Option<String>,
    ) -> PyResult<Connect> {
        if url.trim().is_empty() {
            return Err(invalid_input("the broker URL is empty"));
        }
        let name =
            client_name.unwrap_or_else(|| format!("sluice-python/{}", env!("CARGO_PKG_VERSION")));
        Ok(Connect {
            url: url.to_string(),
            options: ClientOptions::new()
                .request_timeout_ms(request_timeout_ms)
                .connect_timeout_ms(connect_timeout_ms)
                .client_name(name),
        })
    }

    /// Opens the connection (on the runtime).
    pub(crate) async fn open(&self) -> sluice_client::Result<sluice_client::Client> {
        sluice_client::Client::connect_with(&self.url, self.options.clone()).await
    }
}

/// `acks`: 0, 1, -1, "0", "1", "all" or "-1".
pub(crate) fn acks(value: &Bound<'_, PyAny>) -> PyResult<Acks> {
    let text = if value.is_instance_of::<PyInt>() {
        value.extract::<i64>()?.to_string()
    } else if let Ok(s) = value.cast::<PyString>() {
        s.to_cow()?.into_owned()
    } else {
        return Err(invalid_input("acks must be 0, 1 or \"all\""));
    };
    text.parse::<Acks>().map_err(invalid_input)
}
