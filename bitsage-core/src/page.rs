//! Pagination for list queries.

use serde::{Deserialize, Serialize};

use crate::Error;

/// Largest page a list query returns.
pub const MAX_PAGE_SIZE: u32 = 1000;

/// Which slice of a list to return (offset pagination over a stable order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PageRequest {
    /// Items to return, 1 ..= [`MAX_PAGE_SIZE`].
    pub limit: u32,
    /// Items to skip.
    pub offset: u64,
}

impl PageRequest {
    /// A validated page request.
    pub fn new(limit: u32, offset: u64) -> Result<Self, Error> {
        if limit == 0 || limit > MAX_PAGE_SIZE {
            return Err(Error::invalid(
                "page",
                format!("limit must be 1 ..= {MAX_PAGE_SIZE}"),
            ));
        }
        Ok(Self { limit, offset })
    }

    /// The first page of `limit` items.
    pub fn first(limit: u32) -> Result<Self, Error> {
        Self::new(limit, 0)
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self {
            limit: 100,
            offset: 0,
        }
    }
}

/// One page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    /// The items, in the list's stable order.
    pub items: Vec<T>,
    /// Items matching the filter in all pages.
    pub total: u64,
    /// The offset of the next page, or `None` on the last page.
    pub next_offset: Option<u64>,
}

impl<T> Page<T> {
    /// Builds a page from its items, the request and the total count.
    pub fn new(items: Vec<T>, req: PageRequest, total: u64) -> Self {
        let end = req.offset + items.len() as u64;
        Self {
            next_offset: (end < total).then_some(end),
            items,
            total,
        }
    }
}
