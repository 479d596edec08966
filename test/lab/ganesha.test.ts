import { describe, expect, it } from 'vitest';
import { ganeshaConfigFromExports, ganeshaExportBlocks } from './ganesha.js';
import { parseExports } from '@iot-tofu/nfs-server-lite';

describe('ganesha config from our exports file', () => {
  it('turns each exports line into an EXPORT block whose CLIENT blocks carry access and squash', () => {
    const blocks = ganeshaExportBlocks(
      parseExports(
        '# Managed by iot-tofu\n/srv/nfs/c0ffee42 10.77.0.0/24(rw,sync,no_subtree_check,no_root_squash)\n/srv/tftp/c0ffee42 10.77.0.5(ro) *(rw,all_squash,anonuid=65534,anongid=65534)\n',
      ),
    );
    expect(blocks).toBe(
      [
        'EXPORT {',
        '    Export_Id = 1;',
        '    Path = "/srv/nfs/c0ffee42";',
        '    Pseudo = "/srv/nfs/c0ffee42";',
        '    Protocols = 3, 4;',
        '    Transports = TCP, UDP;',
        '    SecType = sys;',
        '    Access_Type = None;',
        '    CLIENT {',
        '      Clients = 10.77.0.0/24;',
        '      Access_Type = RW;',
        '      Squash = No_Root_Squash;',
        '    }',
        '    FSAL { Name = VFS; }',
        '}',
        'EXPORT {',
        '    Export_Id = 2;',
        '    Path = "/srv/tftp/c0ffee42";',
        '    Pseudo = "/srv/tftp/c0ffee42";',
        '    Protocols = 3, 4;',
        '    Transports = TCP, UDP;',
        '    SecType = sys;',
        '    Access_Type = None;',
        '    CLIENT {',
        '      Clients = 10.77.0.5;',
        '      Access_Type = RO;',
        '      Squash = Root_Squash;',
        '    }',
        '    CLIENT {',
        '      Clients = *;',
        '      Access_Type = RW;',
        '      Squash = All_Squash;',
        '      Anonymous_Uid = 65534;',
        '      Anonymous_Gid = 65534;',
        '    }',
        '    FSAL { Name = VFS; }',
        '}',
        '',
      ].join('\n'),
    );
  });

  it('follows exports(5) defaults: no options means read-only with root squashed; the later of rw/ro wins', () => {
    const blocks = ganeshaExportBlocks(parseExports('/a 10.0.0.1\n/b 10.0.0.2(ro,rw,no_root_squash,root_squash)\n'));
    expect(blocks).toContain('Clients = 10.0.0.1;\n      Access_Type = RO;\n      Squash = Root_Squash;');
    expect(blocks).toContain('Clients = 10.0.0.2;\n      Access_Type = RW;\n      Squash = Root_Squash;');
  });

  it('quotes paths and wraps the exports in a core block bound to the server address', () => {
    const config = ganeshaConfigFromExports('"/srv/with space" 10.77.0.0/24(rw)\n', { bindAddress: '10.77.0.2', recoveryRoot: '/tmp/r' });
    expect(config).toContain('Path = "/srv/with space";');
    expect(config).toMatch(/NFS_CORE_PARAM \{[^}]*Protocols = 3, 4;[^}]*Bind_addr = 10\.77\.0\.2;[^}]*Enable_NLM = false;/);
    expect(config).toContain('NFSV4 { Graceless = true; RecoveryRoot = "/tmp/r"; }');
    expect(ganeshaConfigFromExports('# nothing exported\n', { bindAddress: '10.77.0.2', recoveryRoot: '/tmp/r' })).not.toContain('EXPORT');
  });
});
