//! Typed remote procedures: their numbers, argument and result layouts (checked against
//! libvirt's `src/remote/remote_protocol.x`), and wrappers on [`Rpc`].
//!
//! Every `*Args`/`*Ret` type encodes and decodes ([`Xdr`]), so a test daemon can use the
//! same layouts from the other side.

use livemig_core::migration::flags::{Feature, Params};
use livemig_core::migration::orchestrator::{DomainRef, DomainState};

use super::rpc::{Rpc, RpcError};
use super::xdr::{self, Decoder, Encoder, Xdr, XdrError, AUTH_TYPE_LIST_MAX, DOMAIN_LIST_MAX};

/// `remote_procedure` numbers used here.
pub mod procs {
    /// `REMOTE_PROC_CONNECT_OPEN`
    pub const CONNECT_OPEN: u32 = 1;
    /// `REMOTE_PROC_CONNECT_CLOSE`
    pub const CONNECT_CLOSE: u32 = 2;
    /// `REMOTE_PROC_DOMAIN_CREATE_XML`
    pub const DOMAIN_CREATE_XML: u32 = 10;
    /// `REMOTE_PROC_DOMAIN_DESTROY`
    pub const DOMAIN_DESTROY: u32 = 12;
    /// `REMOTE_PROC_DOMAIN_GET_XML_DESC`
    pub const DOMAIN_GET_XML_DESC: u32 = 14;
    /// `REMOTE_PROC_DOMAIN_LOOKUP_BY_NAME`
    pub const DOMAIN_LOOKUP_BY_NAME: u32 = 23;
    /// `REMOTE_PROC_CONNECT_GET_HOSTNAME`
    pub const CONNECT_GET_HOSTNAME: u32 = 59;
    /// `REMOTE_PROC_CONNECT_SUPPORTS_FEATURE`
    pub const CONNECT_SUPPORTS_FEATURE: u32 = 60;
    /// `REMOTE_PROC_DOMAIN_MIGRATE_PERFORM` (v2)
    pub const DOMAIN_MIGRATE_PERFORM: u32 = 62;
    /// `REMOTE_PROC_AUTH_LIST`
    pub const AUTH_LIST: u32 = 66;
    /// `REMOTE_PROC_DOMAIN_MIGRATE_PREPARE2`
    pub const DOMAIN_MIGRATE_PREPARE2: u32 = 108;
    /// `REMOTE_PROC_DOMAIN_MIGRATE_FINISH2`
    pub const DOMAIN_MIGRATE_FINISH2: u32 = 109;
    /// `REMOTE_PROC_DOMAIN_ABORT_JOB`
    pub const DOMAIN_ABORT_JOB: u32 = 164;
    /// `REMOTE_PROC_DOMAIN_GET_STATE`
    pub const DOMAIN_GET_STATE: u32 = 212;
    /// `REMOTE_PROC_DOMAIN_MIGRATE_BEGIN3`
    pub const DOMAIN_MIGRATE_BEGIN3: u32 = 213;
    /// `REMOTE_PROC_DOMAIN_MIGRATE_PREPARE3`
    pub const DOMAIN_MIGRATE_PREPARE3: u32 = 214;
    /// `REMOTE_PROC_DOMAIN_MIGRATE_PERFORM3`
    pub const DOMAIN_MIGRATE_PERFORM3: u32 = 216;
    /// `REMOTE_PROC_DOMAIN_MIGRATE_FINISH3`
    pub const DOMAIN_MIGRATE_FINISH3: u32 = 217;
    /// `REMOTE_PROC_DOMAIN_MIGRATE_CONFIRM3`
    pub const DOMAIN_MIGRATE_CONFIRM3: u32 = 218;
    /// `REMOTE_PROC_CONNECT_LIST_ALL_DOMAINS`
    pub const CONNECT_LIST_ALL_DOMAINS: u32 = 273;
    /// `REMOTE_PROC_DOMAIN_MIGRATE_BEGIN3_PARAMS`
    pub const DOMAIN_MIGRATE_BEGIN3_PARAMS: u32 = 302;
    /// `REMOTE_PROC_DOMAIN_MIGRATE_PREPARE3_PARAMS`
    pub const DOMAIN_MIGRATE_PREPARE3_PARAMS: u32 = 303;
    /// `REMOTE_PROC_DOMAIN_MIGRATE_PERFORM3_PARAMS`
    pub const DOMAIN_MIGRATE_PERFORM3_PARAMS: u32 = 305;
    /// `REMOTE_PROC_DOMAIN_MIGRATE_FINISH3_PARAMS`
    pub const DOMAIN_MIGRATE_FINISH3_PARAMS: u32 = 306;
    /// `REMOTE_PROC_DOMAIN_MIGRATE_CONFIRM3_PARAMS`
    pub const DOMAIN_MIGRATE_CONFIRM3_PARAMS: u32 = 307;
}

/// Declare an XDR struct: fields are encoded and decoded in declaration order.
macro_rules! xdr_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Debug, Default, PartialEq, Eq)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }
        impl Xdr for $name {
            fn encode(&self, _e: &mut Encoder) -> Result<(), XdrError> {
                $(self.$f.encode(_e)?;)*
                Ok(())
            }
            fn decode(_d: &mut Decoder<'_>) -> Result<Self, XdrError> {
                Ok($name { $($f: Xdr::decode(_d)?),* })
            }
        }
    };
}

// Types: `String` = remote_nonnull_string, `Option<String>` = remote_string,
// `Vec<u8>` = opaque<REMOTE_MIGRATE_COOKIE_MAX>, `Params` = remote_typed_param<64>,
// `DomainRef` = remote_nonnull_domain, u32 = unsigned int, u64 = unsigned hyper, i32 = int.

xdr_struct! {
    /// `remote_connect_open_args`
    pub struct ConnectOpenArgs { /** URI, e.g. `qemu:///system` */ pub name: Option<String>, /** flags */ pub flags: u32 }
}
xdr_struct! {
    /// `remote_connect_supports_feature_args`
    pub struct SupportsFeatureArgs { /** `VIR_DRV_FEATURE_*` */ pub feature: i32 }
}
xdr_struct! {
    /// `remote_connect_supports_feature_ret`
    pub struct SupportsFeatureRet { /** 1 when supported */ pub supported: i32 }
}
xdr_struct! {
    /// `remote_connect_get_hostname_ret`
    pub struct GetHostnameRet { /** host name */ pub hostname: String }
}
xdr_struct! {
    /// `remote_domain_lookup_by_name_args`
    pub struct LookupByNameArgs { /** domain name */ pub name: String }
}
xdr_struct! {
    /// `remote_domain_lookup_by_name_ret`, `remote_domain_create_xml_ret`
    pub struct DomainRet { /** the domain */ pub dom: DomainRef }
}
xdr_struct! {
    /// `remote_domain_get_state_args`
    pub struct GetStateArgs { /** domain */ pub dom: DomainRef, /** flags (0) */ pub flags: u32 }
}
xdr_struct! {
    /// `remote_domain_get_state_ret`
    pub struct GetStateRet { /** `virDomainState` */ pub state: i32, /** reason */ pub reason: i32 }
}
xdr_struct! {
    /// `remote_domain_get_xml_desc_args`
    pub struct GetXmlDescArgs { /** domain */ pub dom: DomainRef, /** `VIR_DOMAIN_XML_*` */ pub flags: u32 }
}
xdr_struct! {
    /// `remote_domain_get_xml_desc_ret`
    pub struct GetXmlDescRet { /** the XML */ pub xml: String }
}
xdr_struct! {
    /// `remote_domain_abort_job_args`, `remote_domain_destroy_args`
    pub struct DomainArgs { /** domain */ pub dom: DomainRef }
}
xdr_struct! {
    /// `remote_domain_create_xml_args`
    pub struct CreateXmlArgs { /** domain XML */ pub xml_desc: String, /** flags */ pub flags: u32 }
}
xdr_struct! {
    /// `remote_connect_list_all_domains_args`
    pub struct ListAllDomainsArgs { /** ask for the list (1) or the count only (0) */ pub need_results: i32, /** `VIR_CONNECT_LIST_DOMAINS_*` */ pub flags: u32 }
}

/// `remote_connect_list_all_domains_ret {remote_nonnull_domain domains<REMOTE_DOMAIN_LIST_MAX>; unsigned int ret}`
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListAllDomainsRet {
    /// The domains.
    pub domains: Vec<DomainRef>,
    /// Their count.
    pub ret: u32,
}

impl Xdr for ListAllDomainsRet {
    fn encode(&self, e: &mut Encoder) -> Result<(), XdrError> {
        let n = self.domains.len();
        if n > DOMAIN_LIST_MAX {
            return Err(XdrError::TooLong {
                what: "domain list",
                len: n as u64,
                max: DOMAIN_LIST_MAX,
            });
        }
        e.u32(n as u32);
        for d in &self.domains {
            d.encode(e)?;
        }
        e.u32(self.ret);
        Ok(())
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(ListAllDomainsRet {
            domains: d.array_of(DOMAIN_LIST_MAX, "domain list")?,
            ret: d.u32()?,
        })
    }
}

/// `remote_auth_list_ret {remote_auth_type types<REMOTE_AUTH_TYPE_LIST_MAX>}`
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthListRet {
    /// 0 NONE, 1 SASL, 2 POLKIT.
    pub types: Vec<i32>,
}

impl Xdr for AuthListRet {
    fn encode(&self, e: &mut Encoder) -> Result<(), XdrError> {
        let n = self.types.len();
        if n > AUTH_TYPE_LIST_MAX {
            return Err(XdrError::TooLong {
                what: "auth types",
                len: n as u64,
                max: AUTH_TYPE_LIST_MAX,
            });
        }
        e.u32(n as u32);
        for t in &self.types {
            e.i32(*t);
        }
        Ok(())
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(AuthListRet {
            types: d.array_of(AUTH_TYPE_LIST_MAX, "auth types")?,
        })
    }
}

// ---- migration, extensible params (302-307): flags are `unsigned int` -----------------

xdr_struct! {
    /// `remote_domain_migrate_begin3_params_args`
    pub struct Begin3ParamsArgs { /** domain */ pub dom: DomainRef, /** params */ pub params: Params, /** flags */ pub flags: u32 }
}
xdr_struct! {
    /// `remote_domain_migrate_begin3_ret` and `..._begin3_params_ret`
    pub struct Begin3Ret { /** cookie_out */ pub cookie_out: Vec<u8>, /** domain XML */ pub xml: String }
}
xdr_struct! {
    /// `remote_domain_migrate_prepare3_params_args`
    pub struct Prepare3ParamsArgs { /** params */ pub params: Params, /** cookie_in */ pub cookie_in: Vec<u8>, /** flags */ pub flags: u32 }
}
xdr_struct! {
    /// `remote_domain_migrate_prepare3_ret` and `..._prepare3_params_ret`
    pub struct Prepare3Ret { /** cookie_out */ pub cookie_out: Vec<u8>, /** uri_out */ pub uri_out: Option<String> }
}
xdr_struct! {
    /// `remote_domain_migrate_perform3_params_args`
    pub struct Perform3ParamsArgs { /** domain */ pub dom: DomainRef, /** dconnuri (P2P only) */ pub dconnuri: Option<String>, /** params */ pub params: Params, /** cookie_in */ pub cookie_in: Vec<u8>, /** flags */ pub flags: u32 }
}
xdr_struct! {
    /// `remote_domain_migrate_perform3_ret` and `..._perform3_params_ret`
    pub struct Perform3Ret { /** cookie_out */ pub cookie_out: Vec<u8> }
}
xdr_struct! {
    /// `remote_domain_migrate_finish3_params_args`
    pub struct Finish3ParamsArgs { /** params */ pub params: Params, /** cookie_in */ pub cookie_in: Vec<u8>, /** flags */ pub flags: u32, /** cancelled */ pub cancelled: i32 }
}
xdr_struct! {
    /// `remote_domain_migrate_finish3_ret` and `..._finish3_params_ret`
    pub struct Finish3Ret { /** the domain on the destination */ pub dom: DomainRef, /** cookie_out */ pub cookie_out: Vec<u8> }
}
xdr_struct! {
    /// `remote_domain_migrate_confirm3_params_args` (the reply is void)
    pub struct Confirm3ParamsArgs { /** domain */ pub dom: DomainRef, /** params */ pub params: Params, /** cookie_in */ pub cookie_in: Vec<u8>, /** flags */ pub flags: u32, /** cancelled */ pub cancelled: i32 }
}

// ---- migration v3, fixed arguments (213-218): flags are `unsigned hyper` ---------------

xdr_struct! {
    /// `remote_domain_migrate_begin3_args`
    pub struct Begin3Args { /** domain */ pub dom: DomainRef, /** xmlin */ pub xmlin: Option<String>, /** flags */ pub flags: u64, /** dname */ pub dname: Option<String>, /** bandwidth, MiB/s */ pub resource: u64 }
}
xdr_struct! {
    /// `remote_domain_migrate_prepare3_args`
    pub struct Prepare3Args { /** cookie_in */ pub cookie_in: Vec<u8>, /** uri_in */ pub uri_in: Option<String>, /** flags */ pub flags: u64, /** dname */ pub dname: Option<String>, /** bandwidth */ pub resource: u64, /** domain XML */ pub dom_xml: String }
}
xdr_struct! {
    /// `remote_domain_migrate_perform3_args`
    pub struct Perform3Args { /** domain */ pub dom: DomainRef, /** xmlin */ pub xmlin: Option<String>, /** cookie_in */ pub cookie_in: Vec<u8>, /** dconnuri */ pub dconnuri: Option<String>, /** migration URI */ pub uri: Option<String>, /** flags */ pub flags: u64, /** dname */ pub dname: Option<String>, /** bandwidth */ pub resource: u64 }
}
xdr_struct! {
    /// `remote_domain_migrate_finish3_args`
    pub struct Finish3Args { /** dname */ pub dname: String, /** cookie_in */ pub cookie_in: Vec<u8>, /** dconnuri */ pub dconnuri: Option<String>, /** migration URI */ pub uri: Option<String>, /** flags */ pub flags: u64, /** cancelled */ pub cancelled: i32 }
}
xdr_struct! {
    /// `remote_domain_migrate_confirm3_args` (the reply is void)
    pub struct Confirm3Args { /** domain */ pub dom: DomainRef, /** cookie_in */ pub cookie_in: Vec<u8>, /** flags */ pub flags: u64, /** cancelled */ pub cancelled: i32 }
}

// ---- migration v2 ---------------------------------------------------------------------

xdr_struct! {
    /// `remote_domain_migrate_prepare2_args`
    pub struct Prepare2Args { /** uri_in */ pub uri_in: Option<String>, /** flags */ pub flags: u64, /** dname */ pub dname: Option<String>, /** bandwidth */ pub resource: u64, /** domain XML */ pub dom_xml: String }
}
xdr_struct! {
    /// `remote_domain_migrate_prepare2_ret`
    pub struct Prepare2Ret { /** cookie */ pub cookie: Vec<u8>, /** uri_out */ pub uri_out: Option<String> }
}
xdr_struct! {
    /// `remote_domain_migrate_perform_args` (the reply is void)
    pub struct PerformArgs { /** domain */ pub dom: DomainRef, /** Prepare2's cookie */ pub cookie: Vec<u8>, /** migration URI */ pub uri: String, /** flags */ pub flags: u64, /** dname */ pub dname: Option<String>, /** bandwidth */ pub resource: u64 }
}
xdr_struct! {
    /// `remote_domain_migrate_finish2_args`
    pub struct Finish2Args { /** dname */ pub dname: String, /** cookie */ pub cookie: Vec<u8>, /** migration URI */ pub uri: String, /** flags */ pub flags: u64, /** 1 when Perform failed */ pub retcode: i32 }
}
xdr_struct! {
    /// `remote_domain_migrate_finish2_ret`
    pub struct Finish2Ret { /** the domain on the destination */ pub ddom: DomainRef }
}

impl Rpc {
    /// Call `procedure` with typed arguments and decode the typed result (exactly: trailing
    /// bytes are an error).
    pub fn invoke<A: Xdr, R: Xdr>(&mut self, procedure: u32, args: &A) -> Result<R, RpcError> {
        let body = xdr::to_bytes(args)?;
        let reply = self.call(procedure, &body)?;
        Ok(xdr::from_bytes(&reply)?)
    }

    /// `CONNECT_OPEN` (1), e.g. `connect_open(Some("qemu:///system"), 0)`.
    pub fn connect_open(&mut self, name: Option<&str>, flags: u32) -> Result<(), RpcError> {
        let args = ConnectOpenArgs {
            name: name.map(str::to_owned),
            flags,
        };
        self.invoke(procs::CONNECT_OPEN, &args)
    }

    /// `CONNECT_CLOSE` (2).
    pub fn connect_close(&mut self) -> Result<(), RpcError> {
        self.invoke(procs::CONNECT_CLOSE, &())
    }

    /// `AUTH_LIST` (66): the auth types the daemon accepts (`[0]` = none needed).
    pub fn auth_list(&mut self) -> Result<Vec<i32>, RpcError> {
        let r: AuthListRet = self.invoke(procs::AUTH_LIST, &())?;
        Ok(r.types)
    }

    /// `CONNECT_SUPPORTS_FEATURE` (60).
    pub fn supports_feature(&mut self, feature: Feature) -> Result<bool, RpcError> {
        let r: SupportsFeatureRet = self.invoke(
            procs::CONNECT_SUPPORTS_FEATURE,
            &SupportsFeatureArgs {
                feature: feature.number() as i32,
            },
        )?;
        Ok(r.supported != 0)
    }

    /// `CONNECT_GET_HOSTNAME` (59).
    pub fn get_hostname(&mut self) -> Result<String, RpcError> {
        let r: GetHostnameRet = self.invoke(procs::CONNECT_GET_HOSTNAME, &())?;
        Ok(r.hostname)
    }

    /// `DOMAIN_LOOKUP_BY_NAME` (23).
    pub fn lookup_by_name(&mut self, name: &str) -> Result<DomainRef, RpcError> {
        let r: DomainRet = self.invoke(
            procs::DOMAIN_LOOKUP_BY_NAME,
            &LookupByNameArgs { name: name.into() },
        )?;
        Ok(r.dom)
    }

    /// `DOMAIN_GET_STATE` (212) with flags 0: the state.
    pub fn get_state(&mut self, dom: &DomainRef) -> Result<DomainState, RpcError> {
        Ok(DomainState::from_number(self.get_state_reason(dom)?.state))
    }

    /// `DOMAIN_GET_STATE` (212) with flags 0: state and reason numbers.
    pub fn get_state_reason(&mut self, dom: &DomainRef) -> Result<GetStateRet, RpcError> {
        self.invoke(
            procs::DOMAIN_GET_STATE,
            &GetStateArgs {
                dom: dom.clone(),
                flags: 0,
            },
        )
    }

    /// `DOMAIN_GET_XML_DESC` (14).
    pub fn get_xml_desc(&mut self, dom: &DomainRef, flags: u32) -> Result<String, RpcError> {
        let r: GetXmlDescRet = self.invoke(
            procs::DOMAIN_GET_XML_DESC,
            &GetXmlDescArgs {
                dom: dom.clone(),
                flags,
            },
        )?;
        Ok(r.xml)
    }

    /// `DOMAIN_ABORT_JOB` (164).
    pub fn abort_job(&mut self, dom: &DomainRef) -> Result<(), RpcError> {
        self.invoke(procs::DOMAIN_ABORT_JOB, &DomainArgs { dom: dom.clone() })
    }

    /// `DOMAIN_CREATE_XML` (10): start a transient domain.
    pub fn domain_create_xml(&mut self, xml: &str, flags: u32) -> Result<DomainRef, RpcError> {
        let r: DomainRet = self.invoke(
            procs::DOMAIN_CREATE_XML,
            &CreateXmlArgs {
                xml_desc: xml.into(),
                flags,
            },
        )?;
        Ok(r.dom)
    }

    /// `DOMAIN_DESTROY` (12).
    pub fn domain_destroy(&mut self, dom: &DomainRef) -> Result<(), RpcError> {
        self.invoke(procs::DOMAIN_DESTROY, &DomainArgs { dom: dom.clone() })
    }

    /// `CONNECT_LIST_ALL_DOMAINS` (273) with `need_results = 1`.
    pub fn list_all_domains(&mut self, flags: u32) -> Result<Vec<DomainRef>, RpcError> {
        let r: ListAllDomainsRet = self.invoke(
            procs::CONNECT_LIST_ALL_DOMAINS,
            &ListAllDomainsArgs {
                need_results: 1,
                flags,
            },
        )?;
        Ok(r.domains)
    }

    /// The names of [`Rpc::list_all_domains`] (flags 0: active and inactive).
    pub fn list_domain_names(&mut self) -> Result<Vec<String>, RpcError> {
        Ok(self
            .list_all_domains(0)?
            .into_iter()
            .map(|d| d.name)
            .collect())
    }

    /// `DOMAIN_MIGRATE_BEGIN3_PARAMS` (302).
    pub fn migrate_begin3_params(&mut self, a: &Begin3ParamsArgs) -> Result<Begin3Ret, RpcError> {
        self.invoke(procs::DOMAIN_MIGRATE_BEGIN3_PARAMS, a)
    }

    /// `DOMAIN_MIGRATE_PREPARE3_PARAMS` (303).
    pub fn migrate_prepare3_params(
        &mut self,
        a: &Prepare3ParamsArgs,
    ) -> Result<Prepare3Ret, RpcError> {
        self.invoke(procs::DOMAIN_MIGRATE_PREPARE3_PARAMS, a)
    }

    /// `DOMAIN_MIGRATE_PERFORM3_PARAMS` (305).
    pub fn migrate_perform3_params(
        &mut self,
        a: &Perform3ParamsArgs,
    ) -> Result<Perform3Ret, RpcError> {
        self.invoke(procs::DOMAIN_MIGRATE_PERFORM3_PARAMS, a)
    }

    /// `DOMAIN_MIGRATE_FINISH3_PARAMS` (306).
    pub fn migrate_finish3_params(
        &mut self,
        a: &Finish3ParamsArgs,
    ) -> Result<Finish3Ret, RpcError> {
        self.invoke(procs::DOMAIN_MIGRATE_FINISH3_PARAMS, a)
    }

    /// `DOMAIN_MIGRATE_CONFIRM3_PARAMS` (307).
    pub fn migrate_confirm3_params(&mut self, a: &Confirm3ParamsArgs) -> Result<(), RpcError> {
        self.invoke(procs::DOMAIN_MIGRATE_CONFIRM3_PARAMS, a)
    }

    /// `DOMAIN_MIGRATE_BEGIN3` (213).
    pub fn migrate_begin3(&mut self, a: &Begin3Args) -> Result<Begin3Ret, RpcError> {
        self.invoke(procs::DOMAIN_MIGRATE_BEGIN3, a)
    }

    /// `DOMAIN_MIGRATE_PREPARE3` (214).
    pub fn migrate_prepare3(&mut self, a: &Prepare3Args) -> Result<Prepare3Ret, RpcError> {
        self.invoke(procs::DOMAIN_MIGRATE_PREPARE3, a)
    }

    /// `DOMAIN_MIGRATE_PERFORM3` (216).
    pub fn migrate_perform3(&mut self, a: &Perform3Args) -> Result<Perform3Ret, RpcError> {
        self.invoke(procs::DOMAIN_MIGRATE_PERFORM3, a)
    }

    /// `DOMAIN_MIGRATE_FINISH3` (217).
    pub fn migrate_finish3(&mut self, a: &Finish3Args) -> Result<Finish3Ret, RpcError> {
        self.invoke(procs::DOMAIN_MIGRATE_FINISH3, a)
    }

    /// `DOMAIN_MIGRATE_CONFIRM3` (218).
    pub fn migrate_confirm3(&mut self, a: &Confirm3Args) -> Result<(), RpcError> {
        self.invoke(procs::DOMAIN_MIGRATE_CONFIRM3, a)
    }

    /// `DOMAIN_MIGRATE_PREPARE2` (108).
    pub fn migrate_prepare2(&mut self, a: &Prepare2Args) -> Result<Prepare2Ret, RpcError> {
        self.invoke(procs::DOMAIN_MIGRATE_PREPARE2, a)
    }

    /// `DOMAIN_MIGRATE_PERFORM` (62).
    pub fn migrate_perform(&mut self, a: &PerformArgs) -> Result<(), RpcError> {
        self.invoke(procs::DOMAIN_MIGRATE_PERFORM, a)
    }

    /// `DOMAIN_MIGRATE_FINISH2` (109).
    pub fn migrate_finish2(&mut self, a: &Finish2Args) -> Result<Finish2Ret, RpcError> {
        self.invoke(procs::DOMAIN_MIGRATE_FINISH2, a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use livemig_core::migration::flags::{ParamValue, TypedParam};

    fn dom() -> DomainRef {
        DomainRef {
            name: "tiny".into(),
            uuid: "7e1e7e1e-0000-4000-8000-000000000001".into(),
            id: 1,
        }
    }

    /// CONNECT_OPEN's body as captured from `wire_probe` (real-peer §4).
    #[test]
    fn connect_open_body() {
        let b = xdr::to_bytes(&ConnectOpenArgs {
            name: Some("qemu:///system".into()),
            flags: 0,
        })
        .unwrap();
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(
            hex,
            "000000010000000e71656d753a2f2f2f73797374656d000000000000"
        );
    }

    /// Flags are 4 bytes in the _PARAMS forms and 8 in the fixed ones.
    #[test]
    fn flag_widths() {
        let p = xdr::to_bytes(&Confirm3ParamsArgs {
            dom: dom(),
            flags: 0x101,
            cancelled: 1,
            ..Default::default()
        })
        .unwrap();
        // dom (28) + params count (4) + empty cookie (4) + flags (4) + cancelled (4)
        assert_eq!(p.len(), 44);
        assert_eq!(&p[36..], &[0, 0, 1, 1, 0, 0, 0, 1]);
        let f = xdr::to_bytes(&Confirm3Args {
            dom: dom(),
            flags: 0x101,
            cancelled: 1,
            ..Default::default()
        })
        .unwrap();
        // dom (28) + empty cookie (4) + flags (8) + cancelled (4)
        assert_eq!(f.len(), 44);
        assert_eq!(&f[32..], &[0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 1]);
    }

    #[test]
    fn perform3_params_field_order() {
        let a = Perform3ParamsArgs {
            dom: dom(),
            dconnuri: None,
            params: Params(vec![TypedParam {
                field: "migrate_uri".into(),
                value: ParamValue::String("tcp:h:1".into()),
            }]),
            cookie_in: b"ck".to_vec(),
            flags: 1,
        };
        let b = xdr::to_bytes(&a).unwrap();
        // dom, then the NULL dconnuri, then the params count.
        assert_eq!(&b[28..36], &[0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(xdr::from_bytes::<Perform3ParamsArgs>(&b).unwrap(), a);
    }

    #[test]
    fn list_is_capped_before_allocation() {
        let mut b = 16385u32.to_be_bytes().to_vec();
        b.extend_from_slice(&[0; 8]);
        assert!(matches!(
            xdr::from_bytes::<ListAllDomainsRet>(&b),
            Err(XdrError::TooLong { len: 16385, .. })
        ));
        let b = 16384u32.to_be_bytes();
        assert!(matches!(
            xdr::from_bytes::<ListAllDomainsRet>(&b),
            Err(XdrError::Truncated { .. })
        ));
    }
}
