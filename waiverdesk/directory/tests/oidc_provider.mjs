// A real OpenID provider for the tests: node-oidc-provider (OpenID Certified), on a loopback
// port, with its development sign-in pages (any login name, any password).
//
//   node oidc_provider.mjs CONFIG.json
//
// CONFIG holds the port, the clients, the signing keys (a JWKS with private keys, so that
// tests can also make tokens of their own with the provider's key) and the path of a JSON
// file of accounts ({"dana": {"email": …, "groups": […]}}), read again at every sign-in so
// that a test can change someone's groups between two sign-ins.
import { readFileSync } from "node:fs";
import Provider from "oidc-provider";

const config = JSON.parse(readFileSync(process.argv[2], "utf8"));
const issuer = `http://127.0.0.1:${config.port}`;

const provider = new Provider(issuer, {
  clients: config.clients,
  jwks: config.jwks,
  cookies: { keys: ["waiverdesk-tests-only"] },
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["name", "preferred_username"],
    groups: ["groups"],
  },
  scopes: ["openid", "email", "profile", "groups"],
  ttl: { IdToken: config.idTokenSeconds ?? 3600 },
  async findAccount(ctx, id) {
    const accounts = JSON.parse(readFileSync(config.accounts, "utf8"));
    const account = accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, email_verified: true, ...account };
      },
    };
  },
});

provider.listen(config.port, "127.0.0.1", () => {
  console.log(`listening ${issuer}`);
});
