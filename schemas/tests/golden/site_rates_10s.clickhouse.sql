CREATE TABLE IF NOT EXISTS `edgelens`.`site_rates_10s` (
    `ts` DateTime,
    `site` String,
    `requests` UInt64,
    `bytes` UInt64,
    `status_2xx` UInt64,
    `status_3xx` UInt64,
    `status_4xx` UInt64,
    `status_5xx` UInt64,
    `cache_hits` UInt64,
    `blocked` UInt64,
    `distinct_clients` UInt64,
    `clients_sketch` String
) ENGINE = MergeTree()
PARTITION BY toYYYYMMDD(`ts`)
ORDER BY (`ts`, `site`)
