//! Real clients' sessions and shares, as their messages carried them. Two real shares of
//! Stratum V1 sessions, with their pools' jobs: one whose block header meets a sha256d target, one a scrypt target (what
//! `activity::proof` tells apart). `activity::proof`'s tests check each against what was published
//! of it: the genesis block's hash, the worked example's header.

/// Bitcoin's genesis block as a Stratum V1 job: its coinbase cut around 8 bytes of its
/// scriptSig (`ffff001d`, `01044554`) taken as extranonce1 and extranonce2, no branch (one
/// transaction), version 1, nbits `1d00ffff`, ntime `495fab29`; the share is its nonce,
/// 2,083,236,893. Its hash, 000000000019d668..., is difficulty 2,536.4 on sha256d's scale.
pub const GENESIS_NOTIFY: &str = r#"{"id":null,"method":"mining.notify","params":["g","0000000000000000000000000000000000000000000000000000000000000000","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04","68652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f66207365636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe5548271967f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a4c702b6bf11d5fac00000000",[],"00000001","1d00ffff","495fab29",true]}"#;
pub const GENESIS_EN1: &str = "ffff001d";
/// extranonce2, ntime, nonce.
pub const GENESIS_SHARE: [&str; 3] = ["01044554", "495fab29", "7c2bac1d"];

/// The worked example of a scrypt pool's job (wafflepool.com, March 2014, job `5c04`, as
/// published with its header and used by several miners' tests): extranonce1 `60021014`,
/// extranonce2 `00000000`, nonce `6acb01a0`. Its scrypt hash is difficulty 695.8 on scrypt's
/// scale.
pub const SCRYPT_NOTIFY: &str = r#"{"id":null,"method":"mining.notify","params":["5c04","da0dadb0eda4381df442bde08d23d54d7d371d5ce7af3ee716bd2a7e017eacb8","01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff2a03700a08062f503253482f04953f1a5308","102f776166666c65706f6f6c2e636f6d2f0000000001d07e582a010000001976a9145d8f33b0a7c94c878d572c40cbff22a49268467d88ac00000000",["50a4a386ab344d40d29a833b6e40ea27dab6e5a79a2f8648d3bc0d1aa65ecd3f","7952ecc836fb104f41b2cb06608eeeaa6d1ca2fe4391708fb13bb10ccf8da179","9400ec6453aac577fb6807f11219b4243a3e50ca6d1c727e6d05663211960c94","c11a630fa9332ab51d886a47509b5cbace844316f4fc52b493359b305fd489ae","85891e7c5773f234d647f1d5fca7fbcabb59b261322d16c0ae486ccf5143383d","faa26bbc17f99659f64136bea29b3fc8d772b339c52707d5f2ccfe1195317f43"],"00000002","1b10b60e","531a3f95",false]}"#;
pub const SCRYPT_EN1: &str = "60021014";
pub const SCRYPT_SHARE: [&str; 3] = ["00000000", "531a3f95", "6acb01a0"];

/// ethminer 0.19 in EthereumStratum/2.0.0 (`stratum3+tcp`), its messages as its
/// `EthStratumClient` writes them (the pool's `mining.set` and job are the examples in its
/// comments), each `(from the miner, message)`: `mining.hello`, subscribe, authorize, the
/// session's target (2^256 / T = 4,000,000,000 hashes a share), a job, two shares from its first
/// GPU (both id 40: ids are 40 plus the device's index), each accepted.
pub const ETHMINER_ESV2_SESSION: [(bool, &str); 12] = [
    (
        true,
        r#"{"id":1,"method":"mining.hello","params":{"agent":"ethminer-0.19.0","host":"eth.pool","port":"d05","proto":"EthereumStratum/2.0.0"}}"#,
    ),
    (
        false,
        r#"{"id":1,"result":{"proto":"EthereumStratum/2.0.0","encoding":"plain","resume":"1","timeout":"b4","maxerrors":"5","node":"n1"}}"#,
    ),
    (true, r#"{"id":2,"method":"mining.subscribe"}"#),
    (false, r#"{"id":2,"result":"s-12345"}"#),
    (
        true,
        r#"{"id":3,"method":"mining.authorize","params":["0x5b0a7a7ab3c1e2b0f6b1c4e0ac1a6f0d3b4e8a11.rig1","x"]}"#,
    ),
    (false, r#"{"id":3,"result":"w-123"}"#),
    (
        false,
        r#"{"method":"mining.set","params":{"epoch":"dc","target":"0112e0be826d694b2e62d01511f12a6061fbaec8bc02357593e70e52ba","algo":"ethash","extranonce":"af4c"}}"#,
    ),
    (
        false,
        r#"{"method":"mining.notify","params":["bf0488aa","6526d5","645cf20198c2f3861e947d4f67e3ab63b7b2e24dcc9095bd9123e7b33371f6cc","0"]}"#,
    ),
    (
        true,
        r#"{"id":40,"method":"mining.submit","params":["bf0488aa","6c4fa7b6c0ab","w-123"]}"#,
    ),
    (false, r#"{"id":40,"result":true}"#),
    (
        true,
        r#"{"id":40,"method":"mining.submit","params":["bf0488aa","6c4fa7b6c0ac","w-123"]}"#,
    ),
    (false, r#"{"id":40,"result":true}"#),
];
