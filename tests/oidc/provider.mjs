// A real OpenID Provider for the tests: oidc-provider (OpenID Certified), authorization
// code flow with PKCE, its development login and consent pages, accounts from the
// environment. Usage: node provider.mjs PORT; the client and accounts come as JSON in
// OIDC_CLIENT ({client_id, client_secret, redirect_uri}) and OIDC_ACCOUNTS
// ({login: {role, unit}}). Never for production: any password is accepted.
import Provider from 'oidc-provider';

const port = Number(process.argv[2]);
const client = JSON.parse(process.env.OIDC_CLIENT);
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS || '{}');

const provider = new Provider(`http://127.0.0.1:${port}`, {
  clients: [{
    client_id: client.client_id,
    client_secret: client.client_secret,
    redirect_uris: [client.redirect_uri],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  pkce: { required: () => true },
  claims: { openid: ['sub'], profile: ['preferred_username', 'evidence_role', 'evidence_unit'] },
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true } },
  cookies: { keys: ['evidence-test-provider'] },
  async findAccount(ctx, id) {
    const extra = accounts[id] || {};
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, evidence_role: extra.role, evidence_unit: extra.unit };
      },
    };
  },
});
provider.listen(port, '127.0.0.1', () => console.log(`oidc-provider listening on ${port}`));
