// The banner's stylesheet. Colours come from the site's settings as CSS variables; Accept and
// Reject share one style so neither is more prominent than the other.
export var CSS =
  '.nb-banner{position:fixed;z-index:2147483000;left:0;right:0;box-sizing:border-box;max-height:90vh;overflow:auto;' +
  'padding:20px 24px;background:var(--nb-bg);color:var(--nb-fg);font:15px/1.45 system-ui,sans-serif;' +
  'box-shadow:0 0 24px rgba(0,0,0,.25)}' +
  '.nb-bottom{bottom:0}.nb-top{top:0}' +
  '.nb-center{top:50%;left:50%;right:auto;transform:translate(-50%,-50%);width:min(560px,94vw);border-radius:10px}' +
  '.nb-backdrop{position:fixed;inset:0;z-index:2147482999;background:rgba(0,0,0,.45)}' +
  '.nb-banner h2{margin:0 0 8px;font-size:18px}.nb-banner p{margin:0 0 14px}' +
  '.nb-actions{display:flex;flex-wrap:wrap;gap:10px}' +
  '.nb-banner button{font:inherit;cursor:pointer;border-radius:6px;padding:9px 18px}' +
  '.nb-choice{border:2px solid var(--nb-accent);background:var(--nb-accent);color:var(--nb-bg);font-weight:600}' +
  '.nb-more{border:2px solid var(--nb-accent);background:transparent;color:var(--nb-fg)}' +
  '.nb-banner button:focus-visible,.nb-banner input:focus-visible,.nb-link:focus-visible{outline:3px solid var(--nb-accent);outline-offset:2px}' +
  '.nb-purpose{margin:0 0 12px}.nb-purpose label{font-weight:600}.nb-purpose div{font-size:13px;opacity:.85}' +
  '.nb-vendors{margin:0 0 14px;font-size:13px}.nb-tcf{font-size:13px;margin:0 0 14px}.nb-tcf p{margin:0 0 8px}' +
  '.nb-banner h3{font-size:15px;margin:12px 0 6px}.nb-box{display:inline-block;margin:4px 16px 0 0}' +
  '.nb-vendor{margin:6px 0 6px 12px}.nb-vendor a{color:inherit}' +
  '.nb-a{border:0!important;background:none;color:inherit;text-decoration:underline;padding:4px 0!important}' +
  '.nb-link{position:fixed;z-index:2147482998;left:12px;bottom:12px;padding:6px 12px;border-radius:16px;' +
  'border:1px solid var(--nb-accent);background:var(--nb-bg);color:var(--nb-fg);font:13px system-ui,sans-serif;cursor:pointer}'
